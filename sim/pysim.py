"""Latency and initiation interval of a generated design in Amaranth's own simulator.

The Verilator path (:mod:`cosparse.sim.run`, bench ``sim/bench_network.py``) builds
the AXI4-Stream top (:class:`~cosparse.hw.axis_top.AxisNetwork`) into a C++ model:
accurate but ~30-60 s a design, most of it the build. For tiny networks Amaranth's
Python simulator runs the same RTL with no build at all, fast enough to check the
cost model (hw/cost.py) on dozens of (network, config) pairs in CI
(tests/sim/test_cost_model.py).

:func:`measure` drives the same top with the same beats and measures the same two
figures the same way as the cocotb bench, so both paths give the same cycle counts:

* **latency**: input 0 alone; the ``cycles`` counter when its result is valid minus
  its value when the first input beat is accepted;
* **interval**: every input back to back with the output always ready; the mean of
  the intervals between results over the second half of the stream.

Checked equal to Verilator's figures (docs/explore.md, "Model against simulation";
tests/sim/test_cost_model.py). Speed: about a thousand cycles a second on a tiny
network, far fewer on a wide global k-WTA of many lanes (its histograms): seconds a
tiny pair, minutes for the default network's latency alone.
"""

from __future__ import annotations

import numpy as np

from ..hw.axis_top import AxisNetwork
from ..sw import golden
from ..sw.netspec import NetSpec
from .build import BEAT_BYTES
from .result_word import unpack_result

__all__ = ["measure"]


def _beats(x: np.ndarray, beat_bytes: int) -> list:
    """One input's AXI beats: (tdata, tlast), byte 0 in bits [7:0], the last one zero-padded."""
    raw = x.reshape(-1).astype(np.int8).astype(np.uint8).tobytes()
    chunks = [raw[i:i + beat_bytes] for i in range(0, len(raw), beat_bytes)]
    return [(int.from_bytes(c.ljust(beat_bytes, b"\0"), "little"), int(j == len(chunks) - 1))
            for j, c in enumerate(chunks)]


def measure(spec: NetSpec, inputs, config=None, *, max_cycles: int = 2_000_000) -> dict:
    """Simulate ``spec`` with ``config`` on ``inputs`` (int8) in Amaranth's simulator.

    Returns ``latency`` (cycles, input 0 alone), ``interval`` (steady-state cycles
    between results, second half of the back-to-back stream), ``intervals`` (all of
    them), ``bit_exact`` (every result equal to the golden model's) and ``cycles``
    (simulated in all). RuntimeError when nothing comes out within ``max_cycles``.
    """
    from amaranth.sim import Simulator

    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    x = golden.validate_inputs(spec, inputs)
    if len(x) == 0:
        raise ValueError("no inputs to simulate")
    expected = golden.run(spec, x, keep_activations=False)
    dut = AxisNetwork(spec, config, beat_bytes=BEAT_BYTES)
    classes = dut.classes
    n = len(x)
    frames = [_beats(xi, BEAT_BYTES) for xi in x]
    got = {"latency": [], "stream": [], "error": False}
    first = {}

    async def send(ctx, phase, indices):
        for index in indices:
            for j, (word, last) in enumerate(frames[index]):
                ctx.set(dut.s_axis_tdata, word)
                ctx.set(dut.s_axis_tlast, last)
                ctx.set(dut.s_axis_tvalid, 1)
                cycle, = await ctx.tick().sample(dut.cycles).until(dut.s_axis_tready)
                if j == 0:
                    first[phase, index] = int(cycle)
        ctx.set(dut.s_axis_tvalid, 0)

    async def producer(ctx):
        # The first edge applies the registered reset (AxisNetwork); the cocotb bench, too,
        # offers the first beat so that it is taken on the first edge after reset. That
        # matters: a wide global k-WTA wipes its histograms for 2**(8 + f) cycles after
        # reset, and an input that early waits for the wipe.
        await ctx.tick()
        await send(ctx, "latency", [0])
        while not got["latency"]:
            await ctx.tick()
        await ctx.tick().repeat(4)  # as the cocotb bench: 4 idle cycles between phases
        await send(ctx, "stream", range(n))

    async def consumer(ctx):
        ctx.set(dut.m_axis_tready, 1)
        elapsed = 0
        for phase, count in (("latency", 1), ("stream", n)):
            while len(got[phase]) < count:
                _, _, cycle, valid, data, error = await ctx.tick().sample(
                    dut.cycles, dut.m_axis_tvalid, dut.m_axis_tdata, dut.error)
                elapsed += 1
                if valid:
                    got[phase].append((int(cycle), unpack_result(int(data), classes)))
                    got["error"] |= bool(error)
                elif elapsed > max_cycles:
                    raise RuntimeError(f"the design gave {len(got['latency'])} + "
                                       f"{len(got['stream'])} of 1 + {n} results within "
                                       f"{max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    latency = got["latency"][0][0] - first["latency", 0]
    cycles = [c for c, _ in got["stream"]]
    intervals = [b - a for a, b in zip(cycles, cycles[1:])]
    steady = intervals[len(intervals) // 2:] if len(intervals) >= 3 else intervals
    results = [got["latency"][0][1]] + [r for _, r in got["stream"]]
    indices = [0] + list(range(n))
    exact = not got["error"] and all(logits == [int(v) for v in expected.logits[i]]
                and cls == int(expected.predictions[i])
                for (logits, cls), i in zip(results, indices))
    return {"latency": latency, "interval": float(np.mean(steady)) if steady else None,
            "intervals": intervals, "bit_exact": exact, "cycles": cycles[-1]}
