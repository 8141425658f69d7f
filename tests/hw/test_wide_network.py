"""Networks with wide linear drains, wide global k-WTAs and 3-bit local k-WTA searches:
bit-exact with the golden model, and the summary's cycle model within 10% of the interval
measured cycle by cycle (Amaranth's simulator, inputs back to back)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosparse.hw.config import HwConfig
from cosparse.hw.generate import generate, summary
from cosparse.sim.streams import put_all
from cosparse.sw import golden
from cosparse.sw.netspec import random_inputs, random_netspec

from ._net_util import feature_beats

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def measure(network, xs):
    """Stream ``xs`` back to back, output always ready: (logits, classes, the cycle of
    each result, busy and work cycles per engine)."""
    beats = [beat for x in xs for beat in feature_beats(x)]
    sim = Simulator(network)
    sim.add_clock(1e-6)
    out, times = [], []
    engines = len(network.busy)
    busy, work = [0] * engines, [0] * engines

    async def producer(ctx):
        await put_all(ctx, network.i, beats)

    async def consumer(ctx):
        ctx.set(network.o.ready, 1)
        cycle = 0
        while len(out) < len(xs):
            _, _, valid, payload = await ctx.tick().sample(network.o.valid, network.o.payload)
            cycle += 1
            if valid:
                out.append(([int(v) for v in payload.logits], int(payload.cls)))
                times.append(cycle)

    async def counter(ctx):
        async for _, _, b, w in ctx.tick().sample(network.busy, network.work):
            for e in range(engines):
                busy[e] += (b >> e) & 1
                work[e] += (w >> e) & 1

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(counter, background=True)
    sim.run()
    return (np.array([o[0] for o in out]), np.array([o[1] for o in out]), times,
            (busy, work))


# (seed, widths) of default configs: the wide global k-WTA binds (30: width 4; w20: width 2, f = 8, a
# 512-bin two-level scan), a 3-bit local search and a width-5 drain (2), a width-3 drain
# whose last group lacks kernels (24: 29 channels).
CASES = [(30, False), (20, True), (2, False), (24, False)]


@pytest.mark.parametrize("seed,widths", CASES)
def test_wide_network_bit_exact_and_model(seed, widths):
    spec = random_netspec(seed, widths=widths)
    config = HwConfig.default_for(spec)
    assert any(c.width > 1 for c in config.layers)
    xs = random_inputs(spec, 4, seed=seed)
    logits, classes, times, (busy, work) = measure(generate(spec, config), xs)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
    # Result i leaves the cycles of input i's slowest stage after result i - 1: the model
    # of the same inputs (2.., the first two fill the pipeline).
    measured = (times[-1] - times[1]) / (len(times) - 2)
    model = summary(spec, config, inputs=xs[2:])["initiation_interval"]
    assert abs(measured - model) <= 0.1 * model + 8, (measured, model)
    # Busy splits into useful work (multipliers fed) and waiting.
    assert all(0 < w <= b for b, w in zip(busy, work)), (busy, work)
