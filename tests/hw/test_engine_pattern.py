"""Structured patterns in hardware: a block pattern's shared kernel ids, N:M per-slot ids.

A ``block:K`` layer (``K`` a power of two) keeps one kernel id per block in a
memory of its own beside the weights; these engines must still be bit-exact
with the golden model, and the summary's weight memory must shrink by the
ids it no longer stores.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw.config import HwConfig, LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine, LinearEngine
from cosparse.hw.engine.tiling import Tiling
from cosparse.hw.engine.weights import (block_ids, id_block, id_words, kernel_id_bits,
                                        weight_words)
from cosparse.hw.generate import summary
from cosparse.sw import golden
from cosparse.sw.netspec import Conv2d, Linear, random_netspec, random_requant
from cosparse.sw.netspec.random import pattern_ids

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import run_stream_bench, sparse_beats  # noqa: E402
from test_engine import as_vectors, conv_expected, random_batch  # noqa: E402


def _weights(rng, ids):
    weights = rng.integers(-128, 128, ids.shape)
    weights[ids == 255] = 0
    return weights.astype(np.int8)


def conv_layer(rng, pattern, c, size, k, out, n):
    ids = pattern_ids(rng, pattern, out, c * k * k, n, k, 0.1)
    return Conv2d(name="conv", n=n, weights=_weights(rng, ids), kernel_ids=ids,
                  bias=rng.integers(-2000, 2000, out).astype(np.int32),
                  requant=random_requant(rng, out, c * k * k / n), in_shape=(c, size, size),
                  out_channels=out, kernel=k, pattern=pattern)


def linear_layer(rng, pattern, fan_in, out, n):
    ids = pattern_ids(rng, pattern, out, fan_in, n, 1, 0.1)
    return Linear(name="fc", n=n, weights=_weights(rng, ids), kernel_ids=ids,
                  bias=rng.integers(-2000, 2000, out).astype(np.int32),
                  requant=random_requant(rng, out, fan_in / n), in_features=fan_in,
                  out_features=out, pattern=pattern)


@pytest.mark.parametrize("seed,pattern,c,lanes,offsets,pool,ring", [
    (0, "block:2", 5, 3, 1, 1, False),   # a partial last block (5 channels), one offset a cycle
    (1, "block:4", 8, 2, 9, 2, True),    # the whole kernel per item, a ring of rows
    (2, "block:8", 3, 1, 3, 1, True),    # one block shorter than K: every channel shares
    (3, "nm:1:3", 4, 2, 9, 2, False),    # N:M keeps an id per slot
    (4, "block:3", 4, 4, 3, 1, False)])  # K not a power of two: an id per slot
def test_conv_engine_with_pattern(seed, pattern, c, lanes, offsets, pool, ring):
    rng = np.random.default_rng(seed)
    out, n = 7, 3
    layer = conv_layer(rng, pattern, c=c, size=6, k=3, out=out, n=n)
    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer), offsets=offsets)
    engine = ConvEngine(layer, config, pool=pool, position_major=ring)
    xs = random_batch(rng, layer.in_shape, 3)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        expected += as_vectors(conv_expected(layer, x, pool), out)
    if ring:  # position-major input, as the ring engine takes it
        beats = [b for x in xs for b in _position_major_beats(x)]
    got, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected


def _position_major_beats(x):
    coords = [(c, y, w) for y in range(x.shape[1]) for w in range(x.shape[2])
              for c in range(x.shape[0]) if x[c, y, w]]
    coords = coords or [None]
    return [{"value": 0 if co is None else int(x[co]), "c": (co or (0, 0, 0))[0],
             "y": (co or (0, 0, 0))[1], "x": (co or (0, 0, 0))[2],
             "last": int(i == len(coords) - 1)} for i, co in enumerate(coords)]


@pytest.mark.parametrize("seed,pattern,in_shape,lanes", [
    (0, "block:4", (20,), 2), (1, "block:8", (5, 2, 2), 1), (2, "nm:2:4", (20,), 3)])
def test_linear_engine_with_pattern(seed, pattern, in_shape, lanes):
    rng = np.random.default_rng(seed)
    layer = linear_layer(rng, pattern, 20, 9, n=2)
    engine = LinearEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                          in_shape=in_shape)
    xs = random_batch(rng, in_shape, 4)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x, rng)
        expected += golden.requantise(golden.linear(x[None], layer), layer.requant)[0].tolist()
    out, _ = run_stream_bench(engine, beats, len(expected), seed=seed)
    assert [int(o.value) for o in out] == expected


def test_block_ids_are_stored_once_per_block():
    rng = np.random.default_rng(5)
    layer = conv_layer(rng, "block:4", c=6, size=6, k=3, out=6, n=3)
    assert id_block(layer) == 4
    assert id_block(dataclasses.replace(layer, pattern="random")) == 1
    shared = block_ids(layer, 4)  # [groups, 2 blocks x 9 offsets]
    assert shared.shape == (2, 18)
    for g, f in zip(*np.nonzero(layer.kernel_ids != 255)):
        assert shared[g, (f // 9) // 4 * 9 + f % 9] == layer.kernel_ids[g, f]
    tiling = Tiling(3, 9, (4, 4), 1)
    # 6 channels: 2 blocks of id words against 6 channels of weight words (9 offsets, 1 pass).
    assert len(id_words(layer, 2, tiling, 4)) * 3 == len(weight_words(layer, 2, tiling)) == 6


@pytest.mark.parametrize("block", [2, 4])
def test_summary_weight_memory_shrinks_by_the_shared_ids(block):
    spec = random_netspec(11, max_channels=8, pattern=f"block:{block}")
    plain = dataclasses.replace(spec, layers=tuple(
        dataclasses.replace(l, pattern="random") if isinstance(l, (Conv2d, Linear)) else l
        for l in spec.layers))
    config = HwConfig.default_for(spec)
    rows = {r["name"]: r for r in summary(spec, config)["layers"]}
    before = {r["name"]: r for r in summary(plain, config)["layers"]}
    saved = 0
    for layer in spec.layers:
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        row, old = rows[layer.name], before[layer.name]
        words = row["passes"] * row["lanes"] * row["weight_copies"]
        ids = kernel_id_bits(layer.n)
        if layer.n > 1 and row["engine"] != "window":
            units = layer.structure.unit_count(layer.fan_in, layer.pattern_kernel)
            assert row["weight_memory_bits"] == old["weight_memory_bits"] \
                - words * (layer.fan_in - units) * ids
            saved += words * (layer.fan_in - units) * ids
        else:
            assert row["weight_memory_bits"] == old["weight_memory_bits"]
    assert saved > 0


@pytest.mark.parametrize("seed,pattern", [(1, "block:2"), (3, "block:4"), (6, "nm:1")])
def test_random_network_with_pattern_bit_exact(seed, pattern):
    """Whole random networks whose packed layers follow a pattern (``nm:1``: N:M with M = n
    for each layer), generated and simulated, against the golden model."""
    from cosparse.hw.generate import generate
    from cosparse.sw.netspec import random_inputs
    from _net_util import run_network
    spec = random_netspec(seed, pattern=pattern)
    assert any(l.pattern != "random" for l in spec.packed_layers)
    xs = random_inputs(spec, 2, seed=seed)
    logits, classes, _, _ = run_network(generate(spec), xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
