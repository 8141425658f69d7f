"""Stream put/get helpers for Amaranth-simulator test benches.

Every unit test of a streaming component drives its inputs and drains its
outputs through these, with random valid gaps and random ready stalls, so
that each test also checks the component loses, duplicates and reorders
nothing under backpressure.
"""

from __future__ import annotations

import random

__all__ = ["stream_put", "stream_get", "put_all", "get_until", "run_stream", "accepted_each_cycle"]


async def stream_put(ctx, stream, payload):
    """Offer one payload and wait until it is taken."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload and return it."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def put_all(ctx, stream, payloads, *, stall: float = 0.0, seed: int = 0):
    """Send every payload in order, idling a random number of cycles before each.

    ``stall`` is the probability of one idle cycle (repeated geometrically)
    before a beat; 0 sends back to back.
    """
    rng = random.Random(seed)
    for payload in payloads:
        while stall and rng.random() < stall:
            await ctx.tick()
        await stream_put(ctx, stream, payload)


async def get_until(ctx, stream, count: int, *, stall: float = 0.0, seed: int = 1):
    """Receive ``count`` payloads, holding ready low for random cycles before each."""
    rng = random.Random(seed)
    received = []
    for _ in range(count):
        while stall and rng.random() < stall:
            await ctx.tick()
        received.append(await stream_get(ctx, stream))
    return received


def run_stream(dut, beats, count: int, *, stall: float = 0.0, seed: int = 0,
               quiet_cycles: int = 20) -> list:
    """Simulate a one-in, one-out streaming component: send ``beats`` to ``dut.i``, take ``count``.

    Both sides stall at random (``stall``), and after the ``count``-th
    output the output is watched for ``quiet_cycles`` more cycles with ready
    high: any further beat is a duplicate and fails the run.
    """
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    received = []

    async def producer(ctx):
        await put_all(ctx, dut.i, beats, stall=stall, seed=seed)

    async def consumer(ctx):
        received.extend(await get_until(ctx, dut.o, count, stall=stall, seed=seed + 1))
        ctx.set(dut.o.ready, 1)
        for _ in range(quiet_cycles):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "unexpected extra output beat"

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return received


def accepted_each_cycle(dut, beats) -> list:
    """Offer one beat of ``beats`` every cycle with the output always ready.

    Returns, per beat, whether ``dut.i.ready`` was high on its cycle: a
    throughput test checks that it stayed high (one beat per cycle).
    """
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    accepted = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for beat in beats:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            accepted.append(ready)

    sim.add_testbench(bench)
    sim.run()
    return accepted
