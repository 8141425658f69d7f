"""Requantiser against sw/golden.py's requantise, under random stalls."""

import gc

import numpy as np
import pytest
from amaranth import signed
from amaranth.back import verilog
from amaranth.sim import Simulator

from cosparse.hw.requant import LATENCY, Requantiser, VectorRequantiser
from cosparse.sim.streams import run_stream
from cosparse.sw.golden import requantise
from cosparse.sw.netspec.layers import Requant

# A constructor that rejects its parameters leaves an object Amaranth reports as unused.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def run_requant(dut, beats, *, stall, seed):
    return run_stream(dut, beats, len(beats), stall=stall, seed=seed)


@pytest.mark.parametrize("seed", range(10))
def test_matches_golden(seed):
    """Seeds 6..9 add fraction bits: signed(8 + f) outputs saturated to
    [out_min, out_max] * 2**f."""
    rng = np.random.default_rng(seed)
    frac_bits = [0, 1, 3, 8][seed - 6] if seed >= 6 else 0
    channels = int(rng.integers(1, 9))
    acc_bits = int(rng.choice([2, 8, 17, 24, 32]))
    # Mix of real-looking and extreme coefficients: s = 0, s beyond the product width, m = 0.
    mult = rng.integers(0, 2**16, channels).astype(np.int32)
    shift = rng.integers(0, 63, channels)
    shift = np.where(rng.random(channels) < 0.6, rng.integers(8, 26, channels), shift).astype(np.int32)
    shift[0] = rng.choice([0, 62, shift[0]])
    mult[0] = rng.choice([0, 2**16 - 1, mult[0]])
    out_min, out_max = sorted(int(v) for v in rng.integers(-128, 128, 2)) \
        if seed % 3 == 2 else (-128, 127)
    rq = Requant(multiplier=mult, shift=shift, out_min=out_min, out_max=out_max,
                 frac_bits=frac_bits)
    n = 120
    lo, hi = -2**(acc_bits - 1), 2**(acc_bits - 1)
    a = rng.integers(lo, hi, n, dtype=np.int64)
    a[:4] = [lo, hi - 1, 0, -1][:4]
    ch = rng.integers(0, channels, n)
    onehot = np.zeros((n, channels), np.int64)
    onehot[np.arange(n), ch] = a
    expected = requantise(onehot, rq)[np.arange(n), ch]
    lasts = (rng.random(n) < 0.1).astype(int)
    dut = Requantiser(channels, acc_bits, mult, shift, out_min=out_min, out_max=out_max,
                      frac_bits=frac_bits)
    assert dut.o.payload.value.shape() == signed(8 + frac_bits)
    beats = [{"a": int(v), "channel": int(c), "last": int(l)} for v, c, l in zip(a, ch, lasts)]
    got = run_requant(dut, beats, stall=0.3, seed=seed)
    assert [int(p.value) for p in got] == expected.tolist()
    assert [int(p.last) for p in got] == lasts.tolist()


@pytest.mark.parametrize("seed", range(5))
def test_vector_matches_golden(seed):
    """``width`` channels per beat, slice by slice, the last slice padded (seeds 3, 4 with
    fraction bits)."""
    rng = np.random.default_rng(20 + seed)
    frac_bits = (0, 0, 0, 2, 7)[seed]
    channels, width = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    slices = -(-channels // width)
    acc_bits = int(rng.choice([17, 24, 32]))
    mult = rng.integers(0, 2**16, channels).astype(np.int32)
    shift = rng.integers(8, 40, channels).astype(np.int32)
    n = 30
    a = rng.integers(-2**(acc_bits - 1), 2**(acc_bits - 1), (n, slices * width), dtype=np.int64)
    sl = rng.integers(0, slices, n)
    lasts = (rng.random(n) < 0.2).astype(int)
    dut = VectorRequantiser(channels, width, acc_bits, mult, shift, frac_bits=frac_bits)
    beats = [{"a": a[i, sl[i] * width:(sl[i] + 1) * width].tolist(), "slice": int(sl[i]),
              "last": int(lasts[i])} for i in range(n)]
    got = run_requant(dut, beats, stall=0.3, seed=seed)
    for i, p in enumerate(got):
        want = [requantise(a[i:i + 1, [c]], Requant(multiplier=mult[[c]], shift=shift[[c]],
                                                    frac_bits=frac_bits))[0, 0]
                for c in range(sl[i] * width, min(channels, (sl[i] + 1) * width))]
        assert [int(v) for v in p.values][:len(want)] == want
        assert int(p.last) == lasts[i]


def test_throughput_one_per_cycle():
    """Never stalled, it takes a beat every cycle and answers LATENCY cycles later."""
    dut = Requantiser(2, 16, [3, 5], [1, 2])
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    trace = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(30):
            ctx.set(dut.i.payload, {"a": cycle, "channel": cycle % 2, "last": 0})
            _, _, ready, valid, value = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                                 dut.o.payload.value)
            trace.append((ready, valid, value))

    sim.add_testbench(bench)
    sim.run()
    assert all(ready for ready, _, _ in trace)
    assert [valid for _, valid, _ in trace] == [0] * LATENCY + [1] * (30 - LATENCY)
    assert [value for _, _, value in trace[LATENCY:]] == [((c * (3, 5)[c % 2]) + (1, 2)[c % 2]) >> (1, 2)[c % 2]
                                                   for c in range(30 - LATENCY)]


@pytest.mark.parametrize("args, match", [
    ((0, 16, [], []), "channels"),
    ((1, 33, [1], [1]), "acc_bits"),
    ((1, 1, [1], [1]), "acc_bits"),
    ((2, 16, [1], [1, 1]), "multipliers"),
    ((1, 16, [2**16], [1]), "multipliers"),
    ((1, 16, [-1], [1]), "multipliers"),
    ((1, 16, [1], [63]), "shifts"),
    ((1, 16, [1.5], [1]), "multipliers"),
    ((1, 16, [1], [1], -128, 127, 9), "frac_bits"),
    ((1, 16, [1], [1], -128, 127, -1), "frac_bits"),
    ((1, 16, [1], [1], -128, 127, 1.0), "frac_bits"),
])
def test_rejects_bad_parameters(args, match):
    with pytest.raises((TypeError, ValueError), match=match):
        Requantiser(*args)
    gc.collect()  # the rejected unit's "unused" warning, while this module ignores it


def test_rejects_bad_bounds():
    with pytest.raises(ValueError, match="out_min"):
        Requantiser(1, 16, [1], [1], out_min=10, out_max=0)
    with pytest.raises(ValueError, match="out_max"):
        Requantiser(1, 16, [1], [1], out_max=200)
    gc.collect()


def test_converts_to_verilog():
    dut = Requantiser(4, 32, [1, 2, 3, 65535], [0, 1, 31, 62])
    assert "module" in verilog.convert(dut, name="requant")
