"""The golden model: a vectorised, bit-exact integer implementation of a NetSpec.

Everything the hardware must reproduce is defined here in numpy, following
docs/netspec.md rule by rule; the RTL simulators and the hardware unit tests
compare against these functions. Matrix products run in float64, which is
exact here: every product of a weight and an int8 value and every
accumulator sum stays below 2**31, far inside float64's 2**53 integer range, and BLAS makes a batch
of the default network take milliseconds instead of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .netspec import KWTA, Conv2d, Linear, MaxPool2d, NetSpec, Requant

__all__ = ["LayerStats", "GoldenResult", "conv2d", "linear", "requantise", "maxpool2d",
           "round_fraction", "kwta", "argmax", "useful_macs", "run", "validate_inputs"]

#: Inputs per chunk: bounds the im2col buffer (conv2 of the GSC net: ~1.3 MB per input).
CHUNK = 128


def validate_inputs(spec: NetSpec, x) -> np.ndarray:
    """Check a batch of inputs against the NetSpec's input and return it as int8.

    Accepts one input ``(C, H, W)`` or a batch ``(B, C, H, W)``. Raises a
    ValueError naming the shape, dtype or value range that is wrong.
    """
    x = np.asarray(x)
    expected = tuple(spec.input.shape)
    if x.shape == expected:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != expected:
        raise ValueError(f"inputs have shape {x.shape}; expected {expected} or (batch, "
                         f"{', '.join(map(str, expected))}) for NetSpec {spec.name!r}")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError("inputs contain NaN or infinity; they must be int8 feature codes")
        if not np.array_equal(x, np.round(x)):
            raise ValueError("inputs are fractional floats; pass the int8 feature codes "
                             "(cosparse.sw.features.quantise_features), not dequantised values")
    elif x.dtype.kind not in "iu":
        raise ValueError(f"inputs have dtype {x.dtype}; expected int8 feature codes")
    lo, hi = spec.input.qmin, spec.input.qmax
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"input values span [{x.min()}, {x.max()}] but NetSpec {spec.name!r} "
                         f"takes [{lo}, {hi}]")
    return x.astype(np.int8)


def _windows(x: np.ndarray, layer: Conv2d, axes: tuple) -> np.ndarray:
    """Every K x K window of ``x`` the convolution reads: zero-padded by ``padding`` on each
    side of ``axes`` (H, W), one window per ``stride``; shape ``[..., Ho, Wo, K, K]``."""
    k, s, p = layer.kernel, layer.stride, layer.padding
    if p:
        pad = [(0, 0)] * x.ndim
        for axis in axes:
            pad[axis] = (p, p)
        x = np.pad(x, pad)
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=axes)
    _, h_out, w_out = layer.out_shape
    index = [slice(None)] * windows.ndim
    index[axes[0]] = slice(0, (h_out - 1) * s + 1, s)
    index[axes[1]] = slice(0, (w_out - 1) * s + 1, s)
    return windows[tuple(index)]


def conv2d(x: np.ndarray, layer: Conv2d) -> np.ndarray:
    """``acc + bias`` of the convolution (zero padding, stride): int64 ``[B, C_out, Ho, Wo]``."""
    batch = x.shape[0]
    _, h_out, w_out = layer.out_shape
    windows = _windows(x, layer, (2, 3))
    # [B, C, Ho, Wo, K, K] -> [B, Ho, Wo, C, K, K]: fan-in order (c, ky, kx) as docs say.
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch, h_out * w_out, layer.fan_in)
    acc = cols.astype(np.float64) @ layer.dense_weight().astype(np.float64).T
    acc = acc.astype(np.int64) + layer.bias.astype(np.int64)
    return acc.transpose(0, 2, 1).reshape(batch, layer.out_channels, h_out, w_out)


def linear(x: np.ndarray, layer: Linear) -> np.ndarray:
    """``acc + bias`` of a linear layer on the flattened input: int64 ``[B, out]``."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    acc = flat @ layer.dense_weight().astype(np.float64).T
    return acc.astype(np.int64) + layer.bias.astype(np.int64)


def requantise(a: np.ndarray, requant: Requant) -> np.ndarray:
    """int64 ``acc + bias`` -> int8 (int16 with fraction bits), channel on axis 1.

    Round half up, then saturate to ``[out_min, out_max] * 2**frac_bits``.
    """
    shape = (1, -1) + (1,) * (a.ndim - 2)
    m = requant.multiplier.astype(np.int64).reshape(shape)
    s = requant.shift.astype(np.int64).reshape(shape)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
    q = (a * m + half) >> s
    return np.clip(q, requant.low, requant.high).astype(np.int16 if requant.frac_bits else np.int8)


def maxpool2d(x: np.ndarray, layer: MaxPool2d) -> np.ndarray:
    """Non-overlapping ``size x size`` max over ``[B, C, H, W]``."""
    b, c, h, w = x.shape
    s = layer.size
    return x.reshape(b, c, h // s, s, w // s, s).max(axis=(3, 5))


def _winners_along(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Mask of the k largest along ``axis``; among equals the lower index wins."""
    # A stable sort of the negated values puts equal values in index order.
    order = np.argsort(-values.astype(np.int64), axis=axis, kind="stable")
    top = np.take(order, np.arange(k), axis=axis)
    mask = np.zeros(values.shape, bool)
    np.put_along_axis(mask, top, True, axis=axis)
    return mask


def round_fraction(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Drop ``frac_bits`` fraction bits, rounding half up: ``(x + 2**(f-1)) >> f``, as int8."""
    if not frac_bits:
        return x.astype(np.int8)
    return ((x.astype(np.int64) + (1 << (frac_bits - 1))) >> frac_bits).astype(np.int8)


def kwta(x: np.ndarray, layer: KWTA) -> np.ndarray:
    """k-winners-take-all on a batch: winners keep their value, the rest become 0.

    Winners are chosen on ``x`` as it comes (with ``layer.frac_bits``
    fraction bits) and passed on rounded to int8.
    """
    if layer.mode == "local":
        mask = _winners_along(x, layer.k, axis=1)
    else:
        flat = x.reshape(x.shape[0], -1)
        mask = _winners_along(flat, layer.k, axis=1).reshape(x.shape)
    return np.where(mask, round_fraction(x, layer.frac_bits), 0).astype(np.int8)


def argmax(logits: np.ndarray) -> np.ndarray:
    """Class per row; the lowest index wins a tie (numpy's argmax does exactly this)."""
    return np.argmax(logits, axis=1)


def useful_macs(x: np.ndarray, layer) -> np.ndarray:
    """Per input: products of a non-zero activation with a packed group that land on an output.

    This is the work a sparse-sparse engine must do (one multiply per
    non-zero activation, packed group and, for a convolution, kernel offset
    that reaches a valid output position).
    """
    if isinstance(layer, Linear):
        return np.count_nonzero(x.reshape(x.shape[0], -1), axis=1) * layer.groups
    nonzero = np.count_nonzero(x, axis=1).astype(np.int64)  # [B, H, W]
    return _windows(nonzero, layer, (1, 2)).sum(axis=(1, 2, 3, 4)) * layer.groups


@dataclass
class LayerStats:
    """Work of one packed layer, per input and as dense references.

    ``useful_macs`` (per input) are non-zero activation x packed group
    products; ``packed_macs`` is what a sparse-weight, dense-activation engine
    does (every input x packed group); ``dense_macs`` is every weight x every
    input of the unpacked layer.
    """

    name: str
    kind: str
    nonzero_inputs: np.ndarray
    useful_macs: np.ndarray
    packed_macs: int
    dense_macs: int

    def as_dict(self, index: int | None = None) -> dict:
        pick = (lambda a: int(a[index])) if index is not None else (lambda a: a.tolist())
        return {"name": self.name, "kind": self.kind,
                "nonzero_inputs": pick(self.nonzero_inputs), "useful_macs": pick(self.useful_macs),
                "packed_macs": self.packed_macs, "dense_macs": self.dense_macs}


@dataclass
class GoldenResult:
    """Outputs of a batch: logits, classes, per-layer activations and work."""

    logits: np.ndarray  # int64 [B, classes] (int32 values; a last conv2d's flattened C, H, W)
    predictions: np.ndarray  # int64 [B]
    activations: dict = field(default_factory=dict)  # layer name -> [B, *out_shape]
    stats: list = field(default_factory=list)  # LayerStats per packed layer


def _positions(layer) -> int:
    return int(np.prod(layer.out_shape[1:])) if isinstance(layer, Conv2d) else 1


def _run_chunk(spec: NetSpec, x: np.ndarray, keep_activations: bool):
    activations, work = {}, {}
    h = x
    for layer in spec.layers:
        if isinstance(layer, (Conv2d, Linear)):
            work[layer.name] = (np.count_nonzero(h.reshape(h.shape[0], -1), axis=1),
                                useful_macs(h, layer))
            a = conv2d(h, layer) if isinstance(layer, Conv2d) else linear(h, layer)
            h = a if layer.requant is None else requantise(a, layer.requant)
        elif isinstance(layer, MaxPool2d):
            h = maxpool2d(h, layer)
        else:
            h = kwta(h, layer)
        if keep_activations:
            activations[layer.name] = h
    return h, activations, work


def run(spec: NetSpec, x, *, keep_activations: bool = True) -> GoldenResult:
    """Run the integer network on int8 inputs ``(C, H, W)`` or ``(B, C, H, W)``."""
    x = validate_inputs(spec, x)
    logits, acts, work = [], [], []
    for start in range(0, max(len(x), 1), CHUNK):
        out, chunk_acts, chunk_work = _run_chunk(spec, x[start:start + CHUNK], keep_activations)
        logits.append(out)
        acts.append(chunk_acts)
        work.append(chunk_work)
    # a conv2d last layer's [B, C, H, W] outputs are C*H*W logits in flat (C, H, W) order
    logits = np.concatenate(logits).astype(np.int64).reshape(len(x), -1)
    activations = ({name: np.concatenate([a[name] for a in acts]) for name in acts[0]}
                   if keep_activations else {})
    stats = []
    for layer in spec.packed_layers:
        stats.append(LayerStats(
            name=layer.name, kind=layer.kind,
            nonzero_inputs=np.concatenate([w[layer.name][0] for w in work]),
            useful_macs=np.concatenate([w[layer.name][1] for w in work]),
            packed_macs=layer.groups * layer.fan_in * _positions(layer),
            dense_macs=layer.out_channels * layer.fan_in * _positions(layer)))
    return GoldenResult(logits=logits, predictions=argmax(logits), activations=activations,
                        stats=stats)
