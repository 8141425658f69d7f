"""Whole random networks in Amaranth's simulator, bit-exact with the golden model."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw.argmax import Argmax
from cosparse.hw.config import HwConfig, LayerConfig
from cosparse.hw.generate import generate, summary
from cosparse.hw.top import plan
from cosparse.sw import golden
from cosparse.sw.netspec import random_inputs, random_netspec

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import run_stream_bench  # noqa: E402
from _net_util import run_network  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 6])
def test_random_network_bit_exact(seed):
    spec = random_netspec(seed)
    xs = random_inputs(spec, 3, seed=seed)
    logits, classes, busy, _ = run_network(generate(spec), xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
    assert all(b > 0 for b in busy)


@pytest.mark.parametrize("seed", [6, 7, 8, 11])
def test_random_network_widths_bit_exact(seed):
    """NetSpec version 2 widths: weight_bits 4..16 per layer and frac_bits 2..8 into local
    and global k-WTAs (6: a pool, then f = 4 into a local k-WTA; 7: f = 8 and 2 into local
    ones, 4 into a global one; 8: f = 2 into a global one; 11: 4- and 16-bit weights, f = 2
    and 8). A global k-WTA scans 2**(8 + f) bins per input, so f = 8 there (65,536 cycles an
    input) is left to tests/hw/test_kwta.py."""
    spec = random_netspec(seed, widths=True)
    assert any(getattr(layer, "frac_bits", 0) for layer in spec.layers)
    xs = random_inputs(spec, 2 if seed == 7 else 3, seed=seed)
    logits, classes, busy, _ = run_network(generate(spec), xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
    assert all(b > 0 for b in busy)


def _window_first(seed):
    """A random network whose first layer is a window engine (one input channel)."""
    for s in range(seed, seed + 200):
        spec = random_netspec(s)
        if HwConfig.default_for(spec).layers[0].engine == "window":
            return spec
    raise AssertionError("no such random NetSpec")


@pytest.mark.parametrize("seed", [0, 5])
def test_several_features_a_beat_bit_exact(seed):
    """``input_width`` above 1: the window engine first reads that many features a beat
    (no input Sparsifier), bit-exact, and the input stage takes W / input_width cycles a row."""
    spec = _window_first(seed)
    w = spec.input.shape[2]
    width = next(d for d in (4, 3, 2, w) if w % d == 0)
    config = dataclasses.replace(HwConfig.default_for(spec), input_width=width)
    network = generate(spec, config)
    assert network.i.payload.values.shape().length == width
    xs = random_inputs(spec, 3, seed=seed)
    logits, classes, busy, _ = run_network(network, xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
    assert all(b > 0 for b in busy)
    assert summary(spec, config)["input_cycles"] == int(np.prod(spec.input.shape)) // width


def test_input_width_errors_name_the_fix():
    spec = _window_first(0)
    w = spec.input.shape[2]
    config = HwConfig.default_for(spec)
    bad = next(d for d in range(2, 2 * w + 2) if w % d)
    with pytest.raises(ValueError, match=rf"input_width = {bad} must divide the input width "
                                         rf"W = {w} \(a beat is part of one row\); use one of"):
        dataclasses.replace(config, input_width=bad).validate(spec)
    scatter = dataclasses.replace(config, layers=(dataclasses.replace(
        config.layers[0], engine="scatter"),) + config.layers[1:], input_width=w)
    with pytest.raises(ValueError, match="needs a first conv2d layer built as a window engine"):
        scatter.validate(spec)
    with pytest.raises(ValueError, match="input_width must be a positive integer, got 0"):
        dataclasses.replace(config, input_width=0)
    wide = dataclasses.replace(config, input_width=w)
    assert HwConfig.from_dict(wide.to_dict(spec), spec) == wide


@pytest.mark.parametrize("seed", [4, 9])
def test_random_network_one_offset_one_lane(seed):
    """The narrowest engines (one offset, one lane: many passes) compute the same integers."""
    spec = random_netspec(seed)
    xs = random_inputs(spec, 2, seed=seed)
    config = HwConfig(layers=tuple(LayerConfig(lanes=1, acc_bits=c.acc_bits)
                                   for c in HwConfig.default_for(spec).layers))
    logits, classes, _, _ = run_network(generate(spec, config), xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)


@pytest.mark.parametrize("seed,widths", [(3, False), (11, True)])
def test_dense_baseline_bit_exact_and_slower(seed, widths):
    spec = random_netspec(seed, widths=widths)
    xs = random_inputs(spec, 2, seed=seed)
    expected = golden.run(spec, xs)
    sparse = run_network(generate(spec), xs, stall=0.0)
    dense = run_network(generate(spec, dense=True), xs, stall=0.0)
    for logits, classes, _, _ in (sparse, dense):
        np.testing.assert_array_equal(logits, expected.logits)
        np.testing.assert_array_equal(classes, expected.predictions)
    assert sum(dense[2]) > sum(sparse[2])


def test_argmax_lowest_index_wins_ties():
    argmax = Argmax(4)
    rows = [[5, 9, 9, -3], [-7, -7, -7, -7], [1, 2, 3, 4]]
    beats = [{"value": v, "last": int(i == 3)} for row in rows for i, v in enumerate(row)]
    out, _ = run_stream_bench(argmax, beats, len(rows))
    assert [int(o.cls) for o in out] == [1, 0, 3]
    assert [[int(v) for v in o.logits] for o in out] == rows


def test_plan_rejects_unsupported_orders():
    spec = random_netspec(0)
    with pytest.raises(TypeError, match="NetSpec"):
        plan("not a netspec")
    assert [s.layer.name for s in plan(spec)] == [l.name for l in spec.packed_layers]

