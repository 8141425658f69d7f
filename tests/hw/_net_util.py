"""Running a whole Network in Amaranth's simulator."""

import numpy as np
from amaranth.sim import Simulator

from cosparse.sim.streams import get_until, put_all


def feature_beats(x: np.ndarray, width: int = 1) -> list:
    """One input as dense beats in NetSpec flat order, ``last`` on the final one; ``width``
    features a beat above 1 (``Network.input_width``)."""
    flat = [int(v) for v in x.reshape(-1)]
    if width == 1:
        return [{"value": v, "last": int(i == len(flat) - 1)} for i, v in enumerate(flat)]
    return [{"values": flat[i:i + width], "last": int(i + width == len(flat))}
            for i in range(0, len(flat), width)]


def run_network(network, xs, *, stall=0.2, seed=0):
    """Stream every input of ``xs`` back to back; return (logits, classes, busy cycles per
    engine, total cycles)."""
    beats = [beat for x in xs for beat in feature_beats(x, network.input_width)]
    sim = Simulator(network)
    sim.add_clock(1e-6)
    engines = len(network.busy)
    result = {"out": None, "busy": [0] * engines, "cycles": 0}

    async def producer(ctx):
        await put_all(ctx, network.i, beats, stall=stall, seed=seed)

    async def consumer(ctx):
        result["out"] = await get_until(ctx, network.o, len(xs), stall=stall, seed=seed + 1)

    async def counter(ctx):
        async for _, _, busy in ctx.tick().sample(network.busy):
            result["cycles"] += 1
            for e in range(engines):
                result["busy"][e] += (busy >> e) & 1
            if result["out"] is not None:
                break

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(counter, background=True)
    sim.run()
    logits = np.array([[int(v) for v in r.logits] for r in result["out"]])
    classes = np.array([int(r.cls) for r in result["out"]])
    return logits, classes, result["busy"], result["cycles"]
