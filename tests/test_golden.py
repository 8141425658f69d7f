"""Golden model against a naive, loop-by-loop reading of docs/netspec.md.

The reference below is written from the document, one element at a time in
Python integers, sharing no code with cosparse.sw.golden, so the two can only
agree if both follow the document.
"""

import numpy as np
import pytest

from cosparse.sw import golden
from cosparse.sw.netspec import KWTA, Conv2d, Linear, MaxPool2d, random_inputs, random_netspec


def naive_requant(a, m, s, lo, hi):
    r = (a * m + (2 ** (s - 1) if s > 0 else 0)) // 2 ** s  # floor division = arithmetic shift
    return min(max(r, lo), hi)


def naive_weight(layer, o, f):
    g, j = divmod(o, layer.n)
    kid = int(layer.kernel_ids[g][f])
    return int(layer.weights[g][f]) if kid == j else 0


def naive_layer(layer, x):
    """One input, nested lists / numpy object arrays of Python ints."""
    if isinstance(layer, Conv2d):
        c_in, h, w = layer.in_shape
        k = layer.kernel
        co, ho, wo = layer.out_shape
        out = np.zeros((co, ho, wo), object)
        for o in range(co):
            for y in range(ho):
                for xx in range(wo):
                    acc = sum(naive_weight(layer, o, c * k * k + ky * k + kx) * int(x[c][y + ky][xx + kx])
                              for c in range(c_in) for ky in range(k) for kx in range(k))
                    out[o, y, xx] = acc + int(layer.bias[o])
    elif isinstance(layer, Linear):
        flat = [int(v) for v in np.asarray(x).reshape(-1)]
        out = np.array([sum(naive_weight(layer, o, f) * flat[f] for f in range(layer.fan_in))
                        + int(layer.bias[o]) for o in range(layer.out_features)], object)
    elif isinstance(layer, MaxPool2d):
        c, h, w = layer.in_shape
        s = layer.size
        out = np.array([[[max(x[ch][y * s + i][xx * s + j] for i in range(s) for j in range(s))
                          for xx in range(w // s)] for y in range(h // s)] for ch in range(c)], object)
        return out
    else:
        out = np.zeros(np.shape(x), object)
        groups = ([[(ch, y, xx) for ch in range(layer.in_shape[0])]
                   for y in range(layer.in_shape[1]) for xx in range(layer.in_shape[2])]
                  if layer.mode == "local" else [list(np.ndindex(np.shape(x)))])
        for group in groups:
            ranked = sorted(group, key=lambda idx: (-int(x[idx]), group.index(idx)))
            for idx in ranked[:layer.k]:
                f = layer.frac_bits  # winners lose their fraction bits, rounding half up
                out[idx] = (int(x[idx]) + (2 ** (f - 1) if f else 0)) // 2 ** f
        return out
    if layer.requant is not None:
        rq = layer.requant
        channel_of = (lambda idx: idx[0])
        for idx in np.ndindex(out.shape):
            o = channel_of(idx)
            scale = 2 ** rq.frac_bits
            out[idx] = naive_requant(out[idx], int(rq.multiplier[o]), int(rq.shift[o]),
                                     rq.out_min * scale, rq.out_max * scale)
    return out


def naive_network(spec, x):
    h = np.array(x, object)
    acts = {}
    for layer in spec.layers:
        h = naive_layer(layer, h)
        acts[layer.name] = h
    return acts


@pytest.mark.parametrize("widths", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_golden_matches_naive_reading_of_the_doc(seed, widths):
    spec = random_netspec(seed, max_channels=5, max_size=8, widths=widths)
    x = random_inputs(spec, 3, seed=seed)
    result = golden.run(spec, x)
    for b in range(len(x)):
        acts = naive_network(spec, x[b])
        for layer in spec.layers:
            np.testing.assert_array_equal(result.activations[layer.name][b].astype(np.int64),
                                          acts[layer.name].astype(np.int64),
                                          err_msg=f"seed {seed} input {b} layer {layer.name}")
        logits = acts[spec.layers[-1].name].astype(np.int64)
        assert result.predictions[b] == int(np.argmax(logits))


@pytest.mark.parametrize("a, m, s, expected", [
    (5, 1, 1, 3), (-5, 1, 1, -2), (-6, 1, 1, -3), (7, 1, 0, 7), (1000, 3, 2, 127),
    (-1000, 3, 2, -128), (3, 65535, 16, 3), (-3, 1, 1, -1)])
def test_requant_rounds_half_up_and_saturates(a, m, s, expected):
    from cosparse.sw.netspec import Requant
    rq = Requant(multiplier=np.array([m], np.int32), shift=np.array([s], np.int32))
    assert golden.requantise(np.array([[a]], np.int64), rq)[0, 0] == expected


def test_fraction_bits_widen_the_saturation_and_kwta_rounds_winners_half_up():
    from cosparse.sw.netspec import Requant
    rq = Requant(multiplier=np.array([1], np.int32), shift=np.array([0], np.int32), frac_bits=4)
    out = golden.requantise(np.array([[5000, -5000, 2031]], np.int64).T, rq)[:, 0]
    assert out.tolist() == [127 * 16, -128 * 16, 2031] and out.dtype == np.int16
    # 8 of 16 is a half: up to 1; -8 of 16 is -0.5: up to 0; -24 of 16 is -1.5: up to -1.
    x = np.array([[8, -8, -24, 2032, 7, 3]], np.int16)
    kept = golden.kwta(x, KWTA(name="k", in_shape=(6,), mode="global", k=6, frac_bits=4))
    assert kept.tolist() == [[1, 0, -1, 127, 0, 0]] and kept.dtype == np.int8


def test_fraction_bits_decide_near_ties_the_int8_grid_cannot():
    """Two values 1/16 apart are equal on the int8 grid (tie: lower index) but not finer."""
    x = np.array([[[[20]], [[21]], [[5]]]], np.int16)  # (B, C, H, W): 20/16 and 21/16
    fine = golden.kwta(x, KWTA(name="k", in_shape=(3, 1, 1), mode="local", k=1, frac_bits=4))
    coarse = golden.kwta(golden.round_fraction(x, 4),
                         KWTA(name="k", in_shape=(3, 1, 1), mode="local", k=1))
    assert fine[0, :, 0, 0].tolist() == [0, 1, 0]
    assert coarse[0, :, 0, 0].tolist() == [1, 0, 0]


def test_kwta_ties_lower_index_wins():
    local = KWTA(name="k", in_shape=(4, 1, 2), mode="local", k=2)
    x = np.array([[[[3, 0]], [[3, 0]], [[3, 1]], [[5, 0]]]], np.int8)  # [1, 4, 1, 2]
    out = golden.kwta(x, local)
    np.testing.assert_array_equal(out[0, :, 0, 0], [3, 0, 0, 5])  # 5, then the first 3
    np.testing.assert_array_equal(out[0, :, 0, 1], [0, 0, 1, 0])  # 1, then channel 0's zero
    glob = KWTA(name="g", in_shape=(6,), mode="global", k=3)
    out = golden.kwta(np.array([[-1, 2, -1, 2, -1, -1]], np.int8), glob)
    np.testing.assert_array_equal(out[0], [-1, 2, 0, 2, 0, 0])
    assert np.count_nonzero(golden.kwta(np.zeros((1, 6), np.int8), glob)) == 0


def test_argmax_lowest_index_wins():
    np.testing.assert_array_equal(golden.argmax(np.array([[1, 4, 4], [-2, -2, -3]])), [1, 0])


def test_useful_macs_count_valid_offsets():
    spec = random_netspec(3)
    conv = spec.layers[0]
    x = np.zeros((1, *conv.in_shape), np.int8)
    x[0, 0, 0, 0] = 1  # a corner input reaches exactly one output position
    assert golden.useful_macs(x, conv)[0] == conv.groups
    x[0, 0, 0, 0] = 0
    c, h, w = conv.in_shape
    k = conv.kernel
    x[0, 0, k - 1, k - 1] = 1  # reaches every offset
    assert golden.useful_macs(x, conv)[0] == conv.groups * k * k


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3)), "inputs have shape"),
    (np.full((1, 1, 6, 6), np.nan), "NaN"),
    (np.full((1, 1, 6, 6), 0.5), "fractional"),
    (np.full((1, 1, 6, 6), 200), r"takes \[0, 127\]"),
])
def test_bad_inputs_are_named(bad, message):
    spec = random_netspec(0)
    shape = spec.input.shape
    if bad.ndim == 4:
        bad = np.broadcast_to(bad.reshape(-1)[0], (1, *shape)).copy()
    with pytest.raises(ValueError, match=message):
        golden.run(spec, bad)
