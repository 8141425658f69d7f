"""The wide global k-WTA (hw/kwta/global_wide.py) and the local k-WTA at 3 bits a search
step against the golden model: the units that keep pace with faster engines."""

import gc

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cosparse.hw.kwta import LocalKWTA
from cosparse.hw.kwta.global_wide import GlobalWideKWTA, levels, wide_scan_cycles
from cosparse.hw.kwta.local import search_cycles
from cosparse.sim.streams import put_all, run_stream

from .test_kwta import as_dict, expected_global, expected_local, random_inputs, run, vector_beats

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def wide_beats(x, width):
    """One (S,) input as beats of ``width`` values; the last beat padded with junk."""
    values = [int(v) for v in x.reshape(-1)]
    words = -(-len(values) // width)
    padded = values + [int(x.reshape(-1)[0]) ^ 5] * (words * width - len(values))
    return [{"values": padded[w * width:(w + 1) * width], "last": int(w == words - 1)}
            for w in range(words)]


def run_wide(dut, inputs, width, count, *, stall=0.3, seed=0):
    beats = [b for x in inputs for b in wide_beats(x, width)]
    out = run_stream(dut, beats, count, stall=stall, seed=seed, quiet_cycles=80)
    return [as_dict(p, 1) for p in out]


@pytest.mark.parametrize("seed", range(8))
def test_wide_matches_golden(seed):
    """Random sizes (not multiples of the width), widths 1..5, k from 1 to S, ties,
    all-zero inputs, both skip modes, backpressure on the output."""
    rng = np.random.default_rng(500 + seed)
    width = [1, 2, 3, 4, 5][seed % 5]
    size = int(rng.integers(width, 40))
    k = int(rng.choice([1, size, rng.integers(1, size + 1)]))
    skip_zeros = bool(seed % 2 == 0)
    inputs = random_inputs(rng, (size,), 3)
    expected = [b for x in inputs for b in expected_global(x, k, skip_zeros)]
    dut = GlobalWideKWTA((size,), k, width, skip_zeros=skip_zeros)
    assert run_wide(dut, inputs, width, len(expected), seed=seed) == expected


@pytest.mark.parametrize("seed,frac,width", [(0, 1, 2), (1, 2, 3), (2, 4, 4)])
def test_wide_fraction_bits_match_golden(seed, frac, width):
    """Two-level histogram of signed(8 + f) values; winners rounded half up to int8."""
    rng = np.random.default_rng(600 + seed)
    size = int(rng.integers(width, 24))
    k = int(rng.integers(1, size + 1))
    inputs = random_inputs(rng, (size,), 3, frac)
    inputs[0].reshape(-1)[:3] = [127 << frac, -128 << frac, 1 << (frac - 1)][:size]
    for skip_zeros in (True, False):
        expected = [b for x in inputs for b in expected_global(x, k, skip_zeros, frac)]
        dut = GlobalWideKWTA((size,), k, width, skip_zeros=skip_zeros, frac_bits=frac)
        assert run_wide(dut, inputs, width, len(expected), stall=0.5, seed=seed) == expected


def test_wide_extreme_values():
    """Thresholds at both ends of the range, in the lowest and highest coarse bins."""
    inputs = [np.array(v, np.int8) for v in ([-128] * 7, [127] * 7, [127, -128, 5, -128, 127, 0, 3],
                                            [-128, -128, -1, -128, -128, -128, -128])]
    for k in (1, 3, 7):
        expected = [b for x in inputs for b in expected_global(x, k, True)]
        assert run_wide(GlobalWideKWTA((7,), k, 3), inputs, 3, len(expected), seed=k) == expected


@pytest.mark.parametrize("width,k", [(2, 3), (4, 12)])
def test_wide_cycles_per_input(width, k):
    """Inputs back to back, output always ready: the interval is :func:`wide_scan_cycles`
    with the winners per word and the threshold (the bins scanned), within a cycle, and at
    most its bound for the whole two-level scan."""
    size, count = 50, 4
    rng = np.random.default_rng(9)
    inputs = [rng.integers(-128, 128, size).astype(np.int8) for _ in range(count)]
    dut = GlobalWideKWTA((size,), k, width)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    lasts = []

    async def producer(ctx):
        await put_all(ctx, dut.i, [b for x in inputs for b in wide_beats(x, width)])

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(lasts) < count:
            _, _, valid, last = await ctx.tick().sample(dut.o.valid, dut.o.payload.last)
            cycle += 1
            if valid and last:
                lasts.append(cycle)

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    words = -(-size // width)
    for x, a, b in zip(inputs[1:], lasts, lasts[1:]):
        order = np.argsort(-x.astype(np.int64), kind="stable")[:k]
        per_word = np.bincount(order // width, minlength=words)
        model = wide_scan_cycles(size, width, 0, per_word, x[order[-1]])
        assert model - 1 <= b - a <= model, (b - a, model)
        assert b - a <= wide_scan_cycles(size, width, 0, per_word)
    assert levels(0) == (4, 4) and levels(4) == (6, 6) and levels(1) == (5, 4)


@pytest.mark.parametrize("args, error", [
    (((4, 2, 2), 1, 2), TypeError), (((4,), 0, 2), ValueError), (((4,), 5, 2), ValueError),
    (((4,), 2, 0), ValueError), (((4,), 2, 5), ValueError), (((4,), 2, 2, True, 9), ValueError),
    (((4,), 2, 2, None), TypeError)])
def test_wide_rejects_bad_parameters(args, error):
    with pytest.raises(error):
        GlobalWideKWTA(*args)
    gc.collect()


def test_wide_converts_to_verilog():
    for dut in (GlobalWideKWTA((30,), 5, 4), GlobalWideKWTA((9,), 9, 2, skip_zeros=False,
                                                            frac_bits=2)):
        assert "module" in verilog.convert(dut, name="kwta")


@pytest.mark.parametrize("seed,frac", [(0, 0), (1, 1), (4, 4), (5, 8)])
def test_local_three_bit_steps_match_golden(seed, frac):
    """The local k-WTA deciding 3 threshold bits a step (7 candidate digits): the same
    winners, ties and rounding as the golden model, k from 1 to C, both skip modes."""
    rng = np.random.default_rng(700 + seed)
    shape = (int(rng.integers(1, 20)), int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    k = int(rng.choice([1, shape[0], rng.integers(1, shape[0] + 1)]))
    inputs = random_inputs(rng, shape, 3, frac)
    if frac:
        inputs[0].reshape(-1)[:3] = [127 << frac, -128 << frac, 1 << (frac - 1)][:inputs[0].size]
    skip_zeros = bool(seed % 2 == 0)
    expected = [b for x in inputs for b in expected_local(x, k, skip_zeros, frac)]
    dut = LocalKWTA(shape, k, skip_zeros=skip_zeros, frac_bits=frac, step_bits=3)
    assert run(dut, inputs, "vector", len(expected), seed=seed) == expected


@pytest.mark.parametrize("frac_bits", [0, 4])
def test_local_three_bit_steps_cycles(frac_bits):
    """Never stalled, one winner a position: a position every search_cycles(f, 3) cycles
    (4 for int8, 5 for f = 4), four at a time in the search ring."""
    shape, k = (6, 2, 3), 1
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100 << frac_bits, shape).astype(np.int16)
    dut = LocalKWTA(shape, k, frac_bits=frac_bits, step_bits=3)
    beats = vector_beats(x) * 3
    taken = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        for beat in beats:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    taken.append(cycle)
                    break

    sim.add_testbench(bench)
    sim.run()
    assert search_cycles(frac_bits, 3) == 1 + -(-(8 + frac_bits) // 3)
    steps = search_cycles(frac_bits, 3) - 1
    assert [b - a for a, b in zip(taken, taken[4:])] == [4 * steps] * (len(beats) - 4)
    with pytest.raises(ValueError, match="step_bits"):
        LocalKWTA(shape, k, step_bits=4)
