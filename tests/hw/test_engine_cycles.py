"""Cycles follow sparsity: an engine's busy cycles scale with non-zero inputs and with 1/n."""

import sys
from pathlib import Path

import numpy as np

from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine, LinearEngine
from cosparse.sw import golden

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import run_stream_bench, sparse_beats  # noqa: E402
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


def test_conv_cycles_halve_with_half_the_nonzero_inputs():
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, c=8, size=6, k=3, out=8, n=2)
    engine = ConvEngine(layer, LayerConfig(lanes=4, acc_bits=accumulator_bits(layer)))
    x = rng.integers(1, 128, (2, 8, 6, 6)).astype(np.int8)
    # Same density everywhere so that useful MACs halve with the count of non-zeros.
    dense_half = np.where(rng.random(x.shape) < 0.5, x, 0).astype(np.int8)
    quarter = np.where(rng.random(x.shape) < 0.5, dense_half, 0).astype(np.int8)
    outputs = 2 * 8 * 16
    full, half = busy_cycles(engine, dense_half, outputs), busy_cycles(engine, quarter, outputs)
    macs = [golden.useful_macs(v, layer).sum() for v in (dense_half, quarter)]
    assert abs(half / full - macs[1] / macs[0]) < 0.25 * macs[1] / macs[0]
    assert 0.4 < half / full < 0.65


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
