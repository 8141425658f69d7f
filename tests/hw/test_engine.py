"""Packed-layer engines against the golden model, with random stalls on both streams."""

import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import signed

from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine, LinearEngine
from cosparse.sw import golden
from cosparse.sw.netspec import (Conv2d, Linear, MaxPool2d, random_packing, random_requant,
                                 weight_dtype)

# A constructor that rejects its parameters leaves parts Amaranth reports as unused.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import position_major, run_stream_bench, sparse_beats  # noqa: E402


def conv_layer(rng, c, size, k, out, n, requant=True):
    weights, ids = random_packing(rng, out, c * k * k, n, 0.1)
    return Conv2d(name="conv", n=n, weights=weights, kernel_ids=ids,
                  bias=rng.integers(-2000, 2000, out).astype(np.int32),
                  requant=random_requant(rng, out, c * k * k / n) if requant else None,
                  in_shape=(c, size, size), out_channels=out, kernel=k)


def linear_layer(rng, fan_in, out, n, requant=True):
    weights, ids = random_packing(rng, out, fan_in, n, 0.1)
    return Linear(name="fc", n=n, weights=weights, kernel_ids=ids,
                  bias=rng.integers(-2000, 2000, out).astype(np.int32),
                  requant=random_requant(rng, out, fan_in / n) if requant else None,
                  in_features=fan_in, out_features=out)


def widened(layer, rng, bits, frac_bits=0):
    """``layer`` with random ``bits``-bit weights on the same slots (extremes included) and
    ``frac_bits`` on its requantisation; the shift follows so outputs stay spread."""
    import dataclasses
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    weights = rng.integers(low, high + 1, layer.weights.shape)
    weights.reshape(-1)[:2] = [low, high]
    weights[layer.kernel_ids == 255] = 0
    requant = layer.requant
    if requant is not None:
        shift = np.clip(requant.shift.astype(np.int64) + bits - 8 - frac_bits, 0, 62)
        requant = dataclasses.replace(requant, shift=shift.astype(np.int32), frac_bits=frac_bits)
    return dataclasses.replace(layer, weights=weights.astype(weight_dtype(bits)),
                               weight_bits=bits, requant=requant)


def random_batch(rng, shape, batch, density=0.4):
    x = rng.integers(-128, 128, (batch, *shape))
    x[rng.random(x.shape) >= density] = 0
    x[1] = 0  # an all-zero input: the single empty beat of hw/layouts.py
    return x.astype(np.int8)


def conv_expected(layer, x, pool):
    a = golden.conv2d(x[None], layer)
    out = a if layer.requant is None else golden.requantise(a, layer.requant)
    if pool > 1:
        out = golden.maxpool2d(out, MaxPool2d("pool", tuple(out.shape[1:]), pool))
    return position_major(out[0])


def as_vectors(values, channels):
    """Position-major values grouped into one list per position (vector beats)."""
    return [values[i:i + channels] for i in range(0, len(values), channels)]


@pytest.mark.parametrize("seed,kernel,lanes,offsets,pool", [
    (0, 2, 3, 4, 1), (1, 2, 1, 1, 2), (2, 3, 2, 3, 1), (3, 3, 4, 9, 2), (4, 2, 4, 2, 2),
    (5, 3, 1, 9, 1)])
def test_conv_engine(seed, kernel, lanes, offsets, pool):
    """Every offset tiling (one offset, part of a row, whole rows, the whole kernel) and
    lanes < groups (several passes) against the golden model."""
    rng = np.random.default_rng(seed)
    out = 7
    layer = conv_layer(rng, c=2, size=5 + kernel, k=kernel, out=out, n=2)
    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer), offsets=offsets)
    engine = ConvEngine(layer, config, pool=pool)
    xs = random_batch(rng, layer.in_shape, 3)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        expected += as_vectors(conv_expected(layer, x, pool), out)
    got, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected
    per_input = len(expected) // len(xs)
    assert [i for i, o in enumerate(got) if o.last] == [per_input * (i + 1) - 1
                                                         for i in range(len(xs))]


@pytest.mark.parametrize("seed,lanes,in_shape,requant", [
    (0, 5, (20,), False), (1, 1, (5, 2, 2), True), (2, 2, (20,), True)])
def test_linear_engine(seed, lanes, in_shape, requant):
    rng = np.random.default_rng(seed)
    layer = linear_layer(rng, 20, 9, n=2, requant=requant)
    engine = LinearEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                          in_shape=in_shape)
    xs = random_batch(rng, in_shape, 4)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        a = golden.linear(x[None], layer)
        expected += (a if layer.requant is None else golden.requantise(a, layer.requant))[0].tolist()
    out, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [int(o.value) for o in out] == expected
    assert [i for i, o in enumerate(out) if o.last] == [9 * i + 8 for i in range(len(xs))]


@pytest.mark.parametrize("seed,bits,frac,lanes,offsets,pool", [
    (10, 4, 0, 3, 4, 2), (11, 12, 2, 1, 2, 1), (12, 16, 8, 2, 4, 2), (13, 2, 4, 4, 1, 1)])
def test_conv_engine_weight_and_fraction_bits(seed, bits, frac, lanes, offsets, pool):
    """``weight_bits`` 2..16 (signed(8 + bits) products, accumulators from the bound) and
    requantised outputs with fraction bits (signed(8 + frac) values, max-pooled as they are)."""
    rng = np.random.default_rng(seed)
    out = 7
    layer = widened(conv_layer(rng, c=2, size=7, k=2, out=out, n=2), rng, bits, frac)
    layer.validate()
    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer), offsets=offsets)
    engine = ConvEngine(layer, config, pool=pool)
    assert engine.o.payload.values[0].shape() == signed(8 + frac)
    xs = random_batch(rng, layer.in_shape, 3)
    xs[0].reshape(-1)[:3] = [-128, 127, -128]
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        expected += as_vectors(conv_expected(layer, x, pool), out)
    assert any(abs(v) > 127 for vector in expected for v in vector) or frac == 0
    got, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected


@pytest.mark.parametrize("seed,bits,frac,requant", [
    (20, 16, 0, False), (21, 4, 2, True), (22, 12, 8, True)])
def test_linear_engine_weight_and_fraction_bits(seed, bits, frac, requant):
    rng = np.random.default_rng(seed)
    layer = widened(linear_layer(rng, 20, 9, n=2, requant=requant), rng, bits, frac)
    layer.validate()
    engine = LinearEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer)))
    xs = random_batch(rng, (20,), 3)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        a = golden.linear(x[None], layer)
        out = a if layer.requant is None else golden.requantise(a, layer.requant)
        expected += out[0].tolist()
    out, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [int(o.value) for o in out] == expected


@pytest.mark.parametrize("frac_bits", [0, 3, 8])
def test_vector_pool_fraction_bits(frac_bits):
    """VectorPool alone: signed(8 + f) slices (3 passes of 2 channels, 5 used), max over a
    window of 4 positions, extremes of the fine range included."""
    from cosparse.hw.engine.pool import VectorPool
    rng = np.random.default_rng(frac_bits)
    low, high = -128 << frac_bits, 127 << frac_bits
    channels, width, passes, window, outputs = 5, 2, 3, 4, 4
    x = rng.integers(low, high + 1, (outputs, window, passes * width))
    x[0, :, 0] = low
    x[1, 2, 1] = high
    dut = VectorPool(channels, width, passes, window, frac_bits=frac_bits)
    beats = [{"values": x[o, w, q * width:(q + 1) * width].tolist(),
              "last": int(o == outputs - 1 and w == window - 1 and q == passes - 1)}
             for o in range(outputs) for w in range(window) for q in range(passes)]
    got, _ = run_stream_bench(dut, beats, outputs, seed=frac_bits)
    assert [[int(v) for v in o.values] for o in got] == x.max(axis=1)[:, :channels].tolist()
    assert [int(o.last) for o in got] == [0] * (outputs - 1) + [1]
    with pytest.raises(ValueError, match="frac_bits"):
        VectorPool(channels, width, passes, window, frac_bits=9)


@pytest.mark.parametrize("offsets", [1, 4])
def test_same_accumulator_back_to_back(offsets):
    """Consecutive activations hitting one accumulator: forwarding must neither lose nor
    double-count (a 1x1-output conv makes every product of a bank land on the same word)."""
    rng = np.random.default_rng(5)
    layer = conv_layer(rng, c=4, size=2, k=2, out=2, n=2)
    engine = ConvEngine(layer, LayerConfig(lanes=1, acc_bits=accumulator_bits(layer),
                                           offsets=offsets))
    xs = rng.integers(1, 128, (3, 4, 2, 2)).astype(np.int8)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x)
        expected += as_vectors(conv_expected(layer, x, 1), 2)
    got, _ = run_stream_bench(engine, beats, len(expected), stall=0.0)
    assert [[int(v) for v in o.values] for o in got] == expected


def test_linear_same_sums_back_to_back():
    """Every input of a linear layer adds to the same words, one item per cycle."""
    rng = np.random.default_rng(6)
    layer = linear_layer(rng, 12, 3, n=3, requant=False)
    engine = LinearEngine(layer, LayerConfig(lanes=1, acc_bits=accumulator_bits(layer)))
    xs = rng.integers(-128, 128, (3, 12)).astype(np.int8)
    beats = [b for x in xs for b in sparse_beats(x)]
    expected = golden.linear(xs, layer).reshape(-1).tolist()
    got, _ = run_stream_bench(engine, beats, len(expected), stall=0.0)
    assert [int(o.value) for o in got] == expected


@pytest.mark.parametrize("width,lanes,passes,stall", [
    (1, 1, 1, 0.0), (1, 1, 1, 0.5), (1, 1, 2, 0.0), (2, 1, 1, 0.0), (2, 2, 2, 0.3)])
def test_linear_forwarding_patterns(width, lanes, passes, stall):
    """The lane accumulators' pipelined read-modify-write (hw/engine/router.py) forwards the
    sums of the two items ahead: every pattern of hits on one sum at distance 1 and 2 (AAA,
    ABA, ABBA, ABAB, AAB, ...) in one item stream, inputs back to back; with ``width`` 2 the
    two kernels of a group share an entry (one sum each in the lane's two memories), with
    two passes an input's items alternate between the passes' sums (hits two apart, the
    other pass between), and with stalls the items come with gaps."""
    rng = np.random.default_rng(7)
    # Kernel ids of one group, in input order (every input non-zero, beats in index order).
    order = [0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0]
    groups = lanes * passes  # an item per pass and input, one sum per lane and item
    ids = np.array([order if g % 2 == 0 else order[::-1] for g in range(groups)], np.uint8)
    weights = rng.integers(-128, 128, ids.shape).astype(np.int8)
    out = 2 * groups
    layer = Linear(name="fc", n=2, weights=weights, kernel_ids=ids,
                   bias=rng.integers(-2000, 2000, out).astype(np.int32),
                   requant=random_requant(rng, out, len(order) / 2),
                   in_features=len(order), out_features=out)
    engine = LinearEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer),
                                             width=width))
    xs = rng.integers(1, 128, (3, len(order))) * rng.choice([-1, 1], (3, len(order)))
    xs = xs.astype(np.int8)
    beats = [b for x in xs for b in sparse_beats(x)]
    expected = golden.requantise(golden.linear(xs, layer), layer.requant).reshape(-1).tolist()
    got, _ = run_stream_bench(engine, beats, len(expected) // width, stall=stall)
    values = [int(o.value) for o in got] if width == 1 else \
        [int(v) for o in got for v in o.values]
    assert values == expected


def test_bad_parameters():
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, c=1, size=6, k=3, out=4, n=2)
    with pytest.raises(ValueError, match="pool"):
        ConvEngine(layer, LayerConfig(lanes=2, acc_bits=32), pool=3)
    with pytest.raises(ValueError, match="offsets"):
        ConvEngine(layer, LayerConfig(lanes=2, acc_bits=32, offsets=2))
    with pytest.raises(ValueError, match="requant"):
        ConvEngine(conv_layer(rng, c=1, size=6, k=3, out=4, n=2, requant=False),
                   LayerConfig(lanes=2, acc_bits=32))
    lin = linear_layer(rng, 20, 4, n=2)
    with pytest.raises(ValueError, match="in_shape"):
        LinearEngine(lin, LayerConfig(lanes=2, acc_bits=32), in_shape=(3, 2, 2))
    with pytest.raises(ValueError, match="offsets"):
        LinearEngine(lin, LayerConfig(lanes=2, acc_bits=32, offsets=4))
    from cosparse.hw.engine.router import Accumulators
    from cosparse.hw.engine.tiling import Tiling
    from cosparse.hw.engine.weights import lane_layout
    with pytest.raises(ValueError, match="weight_bits"):
        lane_layout(2, 17)
    with pytest.raises(TypeError, match="weight_bits"):
        lane_layout(2, 8.0)
    with pytest.raises(ValueError, match="acc_bits = 24"):  # a 16-bit weight's product is 24 bits
        Accumulators(2, 1, Tiling(1, 1, (1, 1), 1), 24, weight_bits=16)
    from cosparse.hw.engine.router import LaneAccumulators
    with pytest.raises(ValueError, match="acc_bits = 16"):
        LaneAccumulators(2, 1, Tiling(1, 1, (1, 1), 1), 16)
    with pytest.raises(ValueError, match="single-bank"):
        LaneAccumulators(2, 1, Tiling(2, 4, (3, 3), 1), 17)
    with pytest.raises(ValueError, match="lanes"):
        LaneAccumulators(2, 0, Tiling(1, 1, (1, 1), 1), 17)
    import gc
    gc.collect()  # the rejected units' "unused" warnings, while this module ignores them
