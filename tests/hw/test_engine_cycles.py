"""Cycles follow sparsity: an engine's busy cycles scale with non-zero inputs and with 1/n."""

import sys
from pathlib import Path

import numpy as np

from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine, LinearEngine
from cosparse.sw import golden

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import end_cycles, run_stream_bench, sparse_beats  # noqa: E402
from test_engine import conv_layer, linear_layer  # noqa: E402


def busy_cycles(engine, xs, expected_count):
    beats = [b for x in xs for b in sparse_beats(x)]
    _, busy = run_stream_bench(engine, beats, expected_count, stall=0.0, busy=engine.busy)
    return busy


def keep_top(x, k):
    """Keep the k largest |values| of each input (as a k-WTA with that k would)."""
    flat = x.reshape(len(x), -1).copy()
    order = np.argsort(-np.abs(flat.astype(np.int64)), axis=1, kind="stable")
    for row, idx in zip(flat, order):
        row[idx[k:]] = 0
    return flat.reshape(x.shape)


def halves(rng, x):
    """(x with about half its values, that with about half again)."""
    half = np.where(rng.random(x.shape) < 0.5, x, 0).astype(np.int8)
    return half, np.where(rng.random(x.shape) < 0.5, half, 0).astype(np.int8)


def test_conv_cycles_follow_nonzero_inputs_with_whole_kernel_tiles():
    """offsets = K*K: one cycle per non-zero input and pass, whatever its position."""
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, c=8, size=6, k=3, out=8, n=2)
    engine = ConvEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer),
                                           offsets=9))  # G = 4: two passes
    x = rng.integers(1, 128, (2, 8, 6, 6)).astype(np.int8)
    half, quarter = halves(rng, x)
    outputs = 2 * 16
    full, less = busy_cycles(engine, half, outputs), busy_cycles(engine, quarter, outputs)
    nonzero = [np.count_nonzero(v) for v in (half, quarter)]
    assert abs(full - 2 * nonzero[0]) < 0.1 * full  # two passes per input, plus a few
    assert abs(less / full - nonzero[1] / nonzero[0]) < 0.1
    assert 0.4 < less / full < 0.65


def test_conv_cycles_follow_useful_macs_offset_by_offset():
    """offsets = 1: one cycle per valid kernel offset of each non-zero input."""
    rng = np.random.default_rng(1)
    layer = conv_layer(rng, c=4, size=6, k=3, out=4, n=2)
    engine = ConvEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer)))
    x = rng.integers(1, 128, (2, 4, 6, 6)).astype(np.int8)
    half, quarter = halves(rng, x)
    full, less = busy_cycles(engine, half, 32), busy_cycles(engine, quarter, 32)
    macs = [golden.useful_macs(v, layer).sum() / layer.groups for v in (half, quarter)]
    assert abs(full - macs[0]) < 0.1 * full
    assert 0.4 < less / full < 0.65


def test_conv_cycles_halve_with_n():
    """At a fixed number of lanes, doubling n halves the groups and so the passes."""
    rng = np.random.default_rng(2)
    x = rng.integers(1, 128, (2, 4, 6, 6)).astype(np.int8)
    x = np.where(rng.random(x.shape) < 0.5, x, 0).astype(np.int8)
    cycles = {}
    for n in (2, 4):
        layer = conv_layer(rng, c=4, size=6, k=3, out=8, n=n)
        engine = ConvEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer),
                                               offsets=9))
        cycles[n] = busy_cycles(engine, x, 32)
    assert 0.4 < cycles[4] / cycles[2] < 0.625


def test_linear_cycles_halve_with_k_and_with_n():
    rng = np.random.default_rng(1)
    fan_in, out = 256, 16
    x = rng.integers(1, 128, (2, fan_in)).astype(np.int8)
    cycles = {}
    for n in (2, 4):
        layer = linear_layer(rng, fan_in, out, n)
        # A fixed number of multipliers: lanes = 2, so G = 8 (n=2) takes 4 passes and
        # G = 4 (n=4) takes 2.
        engine = LinearEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer)))
        for k in (64, 32):
            cycles[n, k] = busy_cycles(engine, keep_top(x, k), 2 * out)
    assert 0.4 < cycles[2, 32] / cycles[2, 64] < 0.625
    assert 0.4 < cycles[4, 64] / cycles[2, 64] < 0.625


def test_linear_interval_within_the_model():
    """Inputs back to back, output always ready: each input takes its items (non-zero inputs
    times passes) plus the buffer swap, which the summary's cycle model bounds
    (hw/generate.py ``LINEAR_SWAP_CYCLES``, the read-modify-write pipeline included)."""
    from cosparse.hw.generate import LINEAR_SWAP_CYCLES

    rng = np.random.default_rng(2)
    layer = linear_layer(rng, 64, 8, 2)
    config = LayerConfig(lanes=2, acc_bits=accumulator_bits(layer), width=2)
    engine = LinearEngine(layer, config)
    xs = rng.integers(1, 128, (5, 64)).astype(np.int8)
    ends = end_cycles(engine, [b for x in xs for b in sparse_beats(x)], len(xs))
    items = 64 * config.passes(layer.groups)
    extra = np.diff(ends) - items
    assert np.all(extra > 0) and np.all(extra <= LINEAR_SWAP_CYCLES), extra
