"""Shared helpers of the hardware tests: sparse beats, expected streams, running benches."""

import numpy as np
from amaranth.sim import Simulator

from cosparse.sim.streams import get_until, put_all


def sparse_beats(x: np.ndarray, rng=None) -> list:
    """Non-zero activations of one input as sparse beats (any order is valid; shuffled when
    ``rng`` is given), with the empty-input rule of hw/layouts.py."""
    coords = [tuple(map(int, c)) for c in np.argwhere(x != 0)]
    if rng is not None:
        rng.shuffle(coords)
    if not coords:
        coords = [None]
    beats = []
    for i, coord in enumerate(coords):
        value = 0 if coord is None else int(x[coord])
        coord = coord or (0,) * x.ndim
        beat = {"value": value, "last": int(i == len(coords) - 1)}
        beat.update(dict(zip(("c", "y", "x"), coord)) if x.ndim == 3 else {"index": coord[0]})
        beats.append(beat)
    return beats


def position_major(t: np.ndarray) -> list:
    """A (C, H, W) tensor in position-major order (a 1-D one as is)."""
    return (t.transpose(1, 2, 0) if t.ndim == 3 else t).reshape(-1).tolist()


def run_stream_bench(dut, beats: list, expected_count: int, *, stall=0.3, seed=0,
                     busy=None, max_cycles=200_000):
    """Drive ``dut.i`` with ``beats`` and collect ``expected_count`` beats of ``dut.o``,
    both with random stalls. Returns (received payloads, busy cycles of the ``busy`` signal)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    result = {"out": None, "busy": 0}

    async def producer(ctx):
        await put_all(ctx, dut.i, beats, stall=stall, seed=seed)

    async def consumer(ctx):
        result["out"] = await get_until(ctx, dut.o, expected_count, stall=stall, seed=seed + 1)

    async def counter(ctx):
        cycles = 0
        async for *_, value in ctx.tick().sample(busy):
            result["busy"] += value
            cycles += 1
            if result["out"] is not None or cycles > max_cycles:
                break

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if busy is not None:
        sim.add_testbench(counter, background=True)
    sim.run()
    return result["out"], result["busy"]


def end_cycles(engine, beats: list, count: int) -> list:
    """Cycles at which the engine's ``count`` inputs end, fed without gaps, never stalled."""
    lasts = []
    sim = Simulator(engine)
    sim.add_clock(1e-6)

    async def producer(ctx):
        await put_all(ctx, engine.i, beats)

    async def consumer(ctx):
        ctx.set(engine.o.ready, 1)
        cycle = 0
        async for _, _, valid, last in ctx.tick().sample(engine.o.valid, engine.o.payload.last):
            cycle += 1
            if valid and last:
                lasts.append(cycle)
                if len(lasts) == count:
                    break

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return lasts


def check_vector_stream(engine, beats: list, expected: list, inputs: int, *, stall=0.3, seed=0):
    """Run ``engine`` on ``beats`` with random stalls on both streams: its vector beats must
    be ``expected`` (lists of values), ``last`` on the final beat of each of ``inputs``."""
    got, _ = run_stream_bench(engine, beats, len(expected), stall=stall, seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected
    per_input = len(expected) // inputs
    assert [i for i, o in enumerate(got) if o.last] == [per_input * (i + 1) - 1
                                                         for i in range(inputs)]
