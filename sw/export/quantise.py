"""Post-training quantisation of the float model to the NetSpec's integer rules.

Batch norm (affine=False) is folded into the weights and bias of the layer
before it; weights become ``weight_bits``-bit integers (int8 unless asked)
with one scale per output channel, and every hidden layer's output becomes
int8 with one scale per *layer*: a local k-WTA compares values across
channels, which is only order-preserving when all channels share a scale.
The last layer keeps a single weight scale too, so its int32 logits stay
comparable across classes for the argmax.

A layer whose output goes to a k-WTA may requantise with ``frac_bits``
extra fraction bits (the same scale divided by ``2**frac_bits``): the k-WTA
then ranks on that finer grid and rounds only its winners to int8, so a
near-tie is decided as the float model decides it instead of by the tie
rule (docs/default-model.md measures what that buys).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..netspec import MAX_SHIFT, MULTIPLIER_BITS, Requant, weight_dtype

__all__ = ["fold_batch_norm", "quantise_weights", "fixed_point", "QuantisedLayer",
           "quantise_layer", "activation_scale"]


def fold_batch_norm(weight: np.ndarray, bias: np.ndarray | None, mean: np.ndarray,
                    var: np.ndarray, eps: float):
    """Fold ``(w x + b - mean) / sqrt(var + eps)`` into new ``(w, b)`` (float64)."""
    inv_std = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    bias = np.zeros(len(mean)) if bias is None else bias.astype(np.float64)
    return weight.astype(np.float64) * inv_std[:, None], (bias - mean) * inv_std


def quantise_weights(weight: np.ndarray, per_channel: bool = True, bits: int = 8):
    """Symmetric ``bits``-bit quantisation of ``[out, fan_in]``: returns ``(q, scale [out])``.

    ``q`` spans ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (int8 storage up to
    8 bits, int16 above).
    """
    top = 2 ** (bits - 1) - 1
    peak = np.abs(weight).max(axis=1) if per_channel else np.full(len(weight), np.abs(weight).max())
    scale = np.where(peak > 0, peak / top, 1.0)
    q = np.clip(np.round(weight / scale[:, None]), -top, top).astype(weight_dtype(bits))
    return q, scale


def fixed_point(real: np.ndarray):
    """Unsigned multiplier and shift with ``m / 2**s`` closest to each ``real`` (>= 0).

    The shift is as large as the 16-bit multiplier allows, for the most
    precision, and at most MAX_SHIFT.
    """
    real = np.asarray(real, np.float64)
    if (real < 0).any() or not np.isfinite(real).all():
        raise ValueError("requantisation scales must be finite and non-negative")
    top = 2 ** MULTIPLIER_BITS - 1
    with np.errstate(divide="ignore"):
        shift = np.floor(np.log2(top / np.where(real > 0, real, 1.0)))
    shift = np.clip(np.where(real > 0, shift, 0), 0, MAX_SHIFT).astype(np.int64)
    multiplier = np.round(real * 2.0 ** shift)
    # Rounding can reach 2**16 exactly: give up one bit of shift there.
    over = multiplier > top
    shift[over] -= 1
    multiplier[over] = np.round(real[over] * 2.0 ** shift[over])
    if (multiplier > top).any():
        raise ValueError(f"a requantisation scale is too large for a {MULTIPLIER_BITS}-bit "
                         f"multiplier: {real.max():.4g}")
    return multiplier.astype(np.int32), shift.astype(np.int32)


def activation_scale(values: np.ndarray, percentile: float = 99.99) -> float:
    """int8 output scale covering the calibration activations' magnitude."""
    magnitudes = np.abs(values[values != 0])
    if magnitudes.size == 0:
        return 1.0
    return float(np.percentile(magnitudes, percentile)) / 127.0


@dataclass
class QuantisedLayer:
    """A layer's integer parameters and the real scales they stand for."""

    weight: np.ndarray  # int8 or int16 [out, fan_in]
    bias: np.ndarray  # int32 [out]
    requant: Requant | None
    weight_scale: np.ndarray  # float [out]
    input_scale: float
    output_scale: float  # of the int8 output (its int8 grid), or of the int32 logits
    weight_bits: int = 8


def quantise_layer(weight: np.ndarray, bias: np.ndarray, input_scale: float,
                   output_scale: float | None, relu: bool = False, weight_bits: int = 8,
                   frac_bits: int = 0) -> QuantisedLayer:
    """Quantise one folded layer.

    ``output_scale=None`` marks the last layer: int32 logits, one weight
    scale. ``relu`` saturates the output at 0 (a ReLU costs nothing in the
    requantiser). ``frac_bits`` requantises to ``output_scale / 2**frac_bits``
    (only for a layer whose k-WTA rounds it back to ``output_scale``).
    """
    last = output_scale is None
    if last and frac_bits:
        raise ValueError("the last layer outputs int32 logits: it takes no frac_bits")
    q, w_scale = quantise_weights(weight, per_channel=not last, bits=weight_bits)
    acc_scale = w_scale * input_scale
    q_bias = np.round(bias / acc_scale)
    if np.abs(q_bias).max(initial=0) >= 2 ** 31 - 1:
        raise ValueError("a folded bias does not fit int32 at this weight and input scale")
    requant = None
    if not last:
        multiplier, shift = fixed_point(acc_scale / output_scale * 2.0 ** frac_bits)
        requant = Requant(multiplier=multiplier, shift=shift, out_min=0 if relu else -128,
                          frac_bits=frac_bits)
    return QuantisedLayer(weight=q, bias=q_bias.astype(np.int32), requant=requant,
                          weight_scale=w_scale, input_scale=input_scale,
                          output_scale=float(acc_scale[0]) if last else output_scale,
                          weight_bits=weight_bits)
