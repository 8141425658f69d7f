"""Local and global k-WTA against sw/golden.py's kwta, under random stalls."""

import gc

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cosparse.hw.kwta import GlobalKWTA, LocalKWTA
from cosparse.hw.kwta.global_ import scan_cycles
from cosparse.hw.kwta.local import search_cycles
from cosparse.sim.streams import put_all, run_stream
from cosparse.sw import golden
from cosparse.sw.netspec import KWTA

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def close(elements, ndim):
    """hw/layouts.py's sparse stream of one input from its (coordinates, value) beats."""
    elements = elements or [((0,) * ndim, 0)]
    names = ("c", "y", "x") if ndim == 3 else ("index",)
    return [{"value": v, **dict(zip(names, c)), "last": int(i == len(elements) - 1)}
            for i, (c, v) in enumerate(elements)]


def expected_local(x, k, skip_zeros, frac_bits=0):
    kept = golden.kwta(x[None], KWTA("kwta", x.shape, "local", k, frac_bits))[0]
    channels, height, width = x.shape
    elements = []
    for y in range(height):
        for xx in range(width):
            column = [(c, int(kept[c, y, xx])) for c in range(channels)]
            if skip_zeros:  # the non-zero winners, channels ascending
                column = [e for e in column if e[1] != 0]
            elements += [((c, y, xx), v) for c, v in column]
    return close(elements, 3)


def expected_global(x, k, skip_zeros, frac_bits=0):
    kept = golden.kwta(x[None], KWTA("kwta", x.shape, "global", k, frac_bits))[0]
    coords = [tuple(map(int, c)) for c in np.ndindex(*x.shape)]  # flat order
    elements = [(c, int(kept[c])) for c in coords if kept[c] != 0 or not skip_zeros]
    return close(elements, x.ndim)


def stream_order(x, order):
    if x.ndim == 3 and order == "position_major":
        return x.transpose(1, 2, 0).reshape(-1).tolist()
    return x.reshape(-1).tolist()


def as_dict(payload, ndim):
    names = ("c", "y", "x") if ndim == 3 else ("index",)
    return {"value": int(payload.value), **{n: int(payload[n]) for n in names},
            "last": int(payload.last)}


def vector_beats(x):
    """One (C, H, W) input as dense vector beats: a position per beat, raster order."""
    columns = x.transpose(1, 2, 0).reshape(-1, x.shape[0]).tolist()
    return [{"values": column, "last": int(i == len(columns) - 1)}
            for i, column in enumerate(columns)]


def run(dut, inputs, order, count, *, stall=0.3, seed=0):
    beats = []
    for x in inputs:
        if order == "vector":
            beats += vector_beats(x)
            continue
        values = stream_order(x, order)
        beats += [{"value": int(v), "last": int(i == len(values) - 1)} for i, v in enumerate(values)]
    out = run_stream(dut, beats, count, stall=stall, seed=seed, quiet_cycles=40)
    return [as_dict(p, inputs[0].ndim) for p in out]


def random_inputs(rng, shape, count, frac_bits=0):
    """Inputs full of ties (a small value range), with all-zero and all-equal ones.

    With ``frac_bits`` the values are int8 with that many fraction bits
    (``[-128, 127] * 2**f``): near-ties that only the fine grid orders,
    values that round to 0, halves that round up, and both extremes.
    """
    inputs = []
    for n in range(count):
        span = int(rng.choice([1, 3, 128 << frac_bits]))
        x = rng.integers(-span, span + 1, shape)
        if frac_bits and rng.random() < 0.5:  # a few int8 steps, every fraction between
            x = rng.integers(-2 << frac_bits, (2 << frac_bits) + 1, shape)
        x = np.clip(x, -128 << frac_bits, 127 << frac_bits)
        if rng.random() < 0.2:
            x[...] = 0
        elif rng.random() < 0.1:
            x[...] = rng.integers(-3, 4)
        inputs.append(x.astype(np.int16 if frac_bits else np.int8))
    return inputs


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("skip_zeros", [True, False])
def test_local_matches_golden(seed, skip_zeros):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 13)), int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    k = int(rng.integers(1, shape[0] + 1))
    inputs = random_inputs(rng, shape, 3)
    expected = [b for x in inputs for b in expected_local(x, k, skip_zeros)]
    got = run(LocalKWTA(shape, k, skip_zeros=skip_zeros), inputs, "vector", len(expected),
              seed=seed)
    assert got == expected


@pytest.mark.parametrize("channels, k, frac", [(64, 8, 4), (80, 13, 0), (150, 40, 2)])
def test_local_many_channels_match_golden(channels, k, frac):
    """Eight or more groups of 8 channels: the search's and the ranking's sums across groups."""
    rng = np.random.default_rng(channels)
    shape = (channels, 1, 2)
    inputs = random_inputs(rng, shape, 3, frac)
    expected = [b for x in inputs for b in expected_local(x, k, True, frac)]
    dut = LocalKWTA(shape, k, frac_bits=frac)
    assert run(dut, inputs, "vector", len(expected), seed=channels) == expected


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("skip_zeros", [True, False])
def test_local_fraction_bits_match_golden(seed, skip_zeros):
    """signed(8 + f) values ranked on the fine grid, winners rounded half up to int8."""
    rng = np.random.default_rng(50 + seed)
    frac = (1, 2, 3, 4, 5, 7, 8, 2)[seed]
    shape = (int(rng.integers(1, 13)), int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    k = int(rng.integers(1, shape[0] + 1))
    inputs = random_inputs(rng, shape, 3, frac)
    inputs[0].reshape(-1)[:3] = [127 << frac, -128 << frac, 1 << (frac - 1)][:inputs[0].size]
    expected = [b for x in inputs for b in expected_local(x, k, skip_zeros, frac)]
    dut = LocalKWTA(shape, k, skip_zeros=skip_zeros, frac_bits=frac)
    assert dut.i.payload.values[0].shape().width == 8 + frac
    assert run(dut, inputs, "vector", len(expected), seed=seed) == expected


def test_local_fraction_bits_backpressure():
    """Heavy stalls on both sides (output ready 1 cycle in 4) with f = 4 lose nothing."""
    rng = np.random.default_rng(9)
    shape, k, frac = (9, 2, 2), 4, 4
    inputs = random_inputs(rng, shape, 4, frac)
    expected = [b for x in inputs for b in expected_local(x, k, True, frac)]
    got = run(LocalKWTA(shape, k, frac_bits=frac), inputs, "vector", len(expected),
              stall=0.75, seed=3)
    assert got == expected


@pytest.mark.parametrize("frac_bits", [0, 1, 2, 4, 8])
def test_local_position_every_search(frac_bits):
    """Never stalled, with one winner per position it takes positions at least as fast as
    search_cycles(f) = 1 + ceil((8 + f) / 2) cycles each, the summary's cycle model: four
    at a time (the search ring's four slots), four every 4 * (search_cycles(f) - 1) cycles."""
    shape, k = (6, 2, 3), 1
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100 << frac_bits, shape).astype(np.int16)
    dut = LocalKWTA(shape, k, frac_bits=frac_bits)
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
    assert search_cycles(frac_bits) == 1 + -(-(8 + frac_bits) // 2)
    steps = search_cycles(frac_bits) - 1
    assert [b - a for a, b in zip(taken, taken[4:])] == [4 * steps] * (len(beats) - 4)
    assert taken[-1] - taken[0] <= search_cycles(frac_bits) * (len(beats) - 1)


@pytest.mark.parametrize("args, error", [
    (((4,), 1), TypeError), (((4, 2, 2), 0), ValueError), (((4, 2, 2), 5), ValueError),
    (((4, 2, 2), 2, 1), TypeError), (((4, 2, 2), 2, True, 9), ValueError),
    (((4, 2, 2), 2, True, -1), ValueError), (((4, 2, 2), 2, True, 2.0), TypeError)])
def test_local_rejects_bad_parameters(args, error):
    with pytest.raises(error, match="frac_bits" if len(args) > 3 else None):
        LocalKWTA(*args)
    gc.collect()  # the rejected unit's "unused" warning, while this module ignores it


def test_converts_to_verilog():
    for dut in (LocalKWTA((8, 2, 3), 3), LocalKWTA((5, 1, 1), 5, skip_zeros=False),
                LocalKWTA((4, 1, 2), 2, frac_bits=3)):
        assert "module" in verilog.convert(dut, name="kwta")


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("skip_zeros", [True, False])
def test_global_matches_golden(seed, skip_zeros):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(1, 40)),) if seed % 2 else \
        (int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    order = str(rng.choice(["flat", "position_major"])) if len(shape) == 3 else "flat"
    size = int(np.prod(shape))
    k = int(rng.choice([1, size, rng.integers(1, size + 1)]))
    inputs = random_inputs(rng, shape, 3)
    expected = [b for x in inputs for b in expected_global(x, k, skip_zeros)]
    dut = GlobalKWTA(shape, k, skip_zeros=skip_zeros, order=order)
    assert run(dut, inputs, order, len(expected), seed=seed) == expected


@pytest.mark.parametrize("seed,frac", [(0, 1), (1, 2), (2, 4), (3, 8)])
def test_global_fraction_bits_match_golden(seed, frac):
    """A 2**(8 + f)-bin histogram over signed(8 + f) values; winners rounded to int8."""
    rng = np.random.default_rng(200 + seed)
    shape = (int(rng.integers(1, 20)),) if seed % 2 else \
        (int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    size = int(np.prod(shape))
    k = int(rng.integers(1, size + 1))
    inputs = random_inputs(rng, shape, 1 if frac == 8 else 3, frac)
    inputs[0].reshape(-1)[:3] = [127 << frac, -128 << frac, 1 << (frac - 1)][:size]
    for skip_zeros in (True, False):
        expected = [b for x in inputs for b in expected_global(x, k, skip_zeros, frac)]
        dut = GlobalKWTA(shape, k, skip_zeros=skip_zeros, order="flat", frac_bits=frac)
        assert run(dut, inputs, "flat", len(expected), stall=0.5, seed=seed) == expected


def test_global_extreme_values():
    """The scan covers both ends of the int8 range: -128 and 127 as thresholds."""
    shape = (6,)
    inputs = [np.array(v, np.int8) for v in ([-128] * 6, [127] * 6, [127, -128, 5, -128, 127, 0],
                                            [-128, -128, -1, -128, -128, -128])]
    for k in (1, 3, 6):
        expected = [b for x in inputs for b in expected_global(x, k, True)]
        assert run(GlobalKWTA(shape, k), inputs, "flat", len(expected), seed=k) == expected


@pytest.mark.parametrize("frac_bits", [0, 2])
def test_global_cycles_per_input(frac_bits):
    """Fill of one input overlaps the scan and emit of the previous: 2**(8 + f) + S + 1
    cycles each (S + 257 for int8)."""
    shape, k, count = (2, 3, 4), 5, 4
    size = int(np.prod(shape))
    rng = np.random.default_rng(7)
    inputs = random_inputs(rng, shape, count, frac_bits)
    dut = GlobalKWTA(shape, k, skip_zeros=False, frac_bits=frac_bits)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    values = [v for x in inputs for v in stream_order(x, "position_major")]
    lasts = []

    async def producer(ctx):
        await put_all(ctx, dut.i, [{"value": int(v), "last": int(i % size == size - 1)}
                                   for i, v in enumerate(values)])

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
    assert lasts[0] <= 2 * size + (1 << (8 + frac_bits)) + 5
    assert scan_cycles(size, frac_bits) == size + (1 << (8 + frac_bits)) + 1
    assert [b - a for a, b in zip(lasts, lasts[1:])] == [scan_cycles(size, frac_bits)] * (count - 1)


@pytest.mark.parametrize("args, error", [
    (((4, 4), 1), TypeError), (((4,), 0), ValueError), (((2, 2, 2), 9), ValueError),
    (((4,), 2, True, "column"), ValueError), (((4,), 2, True, "flat", 9), ValueError),
    (((4,), 2, True, "flat", None), TypeError)])
def test_global_rejects_bad_parameters(args, error):
    with pytest.raises(error):
        GlobalKWTA(*args)
    gc.collect()


def test_global_converts_to_verilog():
    for dut in (GlobalKWTA((4, 3, 3), 5), GlobalKWTA((30,), 30, skip_zeros=False)):
        assert "module" in verilog.convert(dut, name="kwta")
