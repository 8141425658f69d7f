"""The PyTorch model with the exporter's int8 roundings applied ("fake quantisation").

Post-training quantisation leaves the int8 network choosing other k-WTA
winners than the float one: at int8 resolution many values tie at the k-th
place (docs/default-model.md measures it), the integer tie rule breaks them
by index, and the differences grow layer by layer. This forward pass folds
batch norm and rounds weights, biases and activations to exactly the grids
the exporter uses at a given :class:`~cosparse.sw.export.Precision` (weight
bits per layer; activations on the int8 grid, or ``frac_bits`` finer up to
the k-WTA, which ranks on the finer values and rounds its winners to int8),
then runs k-WTA with the same tie rule. It is an independent PyTorch statement of what the NetSpec should
compute, so comparing it with the golden model checks the exporter and the
golden model against PyTorch clip by clip; only the 16-bit requantisation
multipliers separate the two. Rounding passes gradients straight through,
ready for quantisation-aware fine-tuning.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import features
from ..model import CompSparseConv2d

__all__ = ["rounded_parameters", "apply_layer", "quantised_forward", "quantised_logits",
           "predict"]


def _blocks(model, blocks):
    from .export import gsc_blocks
    return gsc_blocks(model) if blocks is None else blocks


def _straight_through(x, rounded):
    """``rounded`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (rounded - x).detach()


def _round_half_up(x):
    return torch.floor(x + 0.5)


def _folded(block):
    layer = block.layer
    weight = layer.dense_weight_2d()
    bias = layer.bias if layer.bias is not None else weight.new_zeros(len(weight))
    if block.bn is None:
        return weight, bias
    inv_std = torch.rsqrt(block.bn.running_var + block.bn.eps)
    weight, bias = weight * inv_std[:, None], (bias - block.bn.running_mean) * inv_std
    if block.bn.affine:
        return weight * block.bn.weight[:, None], bias * block.bn.weight + block.bn.bias
    return weight, bias


def rounded_parameters(weight, bias, in_scale: float, last: bool, bits: int = 8):
    """Folded ``weight`` and ``bias`` on the exporter's ``bits``-bit / int32 grids (as floats).

    Weights per output channel (one scale for the whole last layer), clamped
    to ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``; the bias on the
    accumulator's grid (weight scale times input scale).
    """
    top = 2 ** (bits - 1) - 1
    peak = weight.detach().abs().amax(dim=1)
    if last:
        peak = peak.max().expand_as(peak)
    w_scale = torch.where(peak > 0, peak / top, torch.ones_like(peak))
    rounded = torch.clamp(torch.round(weight / w_scale[:, None]), -top, top) * w_scale[:, None]
    acc_scale = w_scale * in_scale
    return rounded, torch.round(bias / acc_scale) * acc_scale


def apply_layer(block, h, weight, bias):
    """``block``'s convolution or linear layer with the given (folded) parameters."""
    if isinstance(block.layer, CompSparseConv2d):
        k = block.layer.kernel_size
        return F.conv2d(h, weight.view(len(weight), -1, k, k), bias,
                        stride=block.layer.stride, padding=block.layer.padding)
    return F.linear(h.flatten(1), weight, bias)


def quantised_forward(model, x: torch.Tensor, output_scales, precision=None, *, blocks=None,
                      input_scale: float = 1.0 / features.QMAX) -> torch.Tensor:
    """Logits of ``model`` on float features ``x`` (q / 127) with every rounding applied.

    ``output_scales`` are the int8 scales of every block's output but the
    last's (cosparse.sw.export.quantise_model's, frozen); ``precision`` (a
    :class:`~cosparse.sw.export.Precision`, default its defaults) gives the
    weight bits and the fraction bits. Batch norm uses its running
    statistics and k-WTA its inference k, as in the exported model.
    Activations are carried in units of their grid (integers as floats), so
    every rounding is exact, and scaled back before the next layer.
    ``blocks`` default to the GSC net's (cosparse.sw.export.model_blocks
    gives any sequential net's); ``x`` is int8 inputs times ``input_scale``.
    """
    from .export import Precision
    blocks = _blocks(model, blocks)
    weight_bits, frac_bits = (precision or Precision()).for_blocks(blocks)
    h, in_scale = x, float(input_scale)
    for index, block in enumerate(blocks):
        last = index == len(blocks) - 1
        weight, bias = _folded(block)
        rounded_weight, rounded_bias = rounded_parameters(weight, bias, in_scale, last,
                                                          weight_bits[index])
        h = apply_layer(block, h, _straight_through(weight, rounded_weight),
                        _straight_through(bias, rounded_bias))
        if last:
            return h
        scale, frac = output_scales[index], frac_bits[index]
        low = 0 if isinstance(block.activation, nn.ReLU) else -128
        fine = h / (scale / 2 ** frac)
        units = _straight_through(fine, torch.clamp(_round_half_up(fine), low * 2 ** frac,
                                                    127 * 2 ** frac))
        if block.pool is not None:
            units = block.pool(units)
        if block.activation is not None:
            units = block.activation(units)
        if frac:  # the k-WTA's winners, rounded half up to int8
            units = _straight_through(units / 2 ** frac, _round_half_up(units / 2 ** frac))
        h = units * scale
        in_scale = scale
    return h


@torch.no_grad()
def quantised_logits(model, x_int8: np.ndarray, output_scales, batch: int = 512,
                     precision=None, *, blocks=None,
                     input_scale: float = 1.0 / features.QMAX) -> torch.Tensor:
    """Logits of :func:`quantised_forward` on int8 inputs, in float64 for exact rounding."""
    from .export import float_inputs
    model = model.double().eval()
    try:
        out = [quantised_forward(model, torch.from_numpy(
                   float_inputs(x_int8[i:i + batch], input_scale).astype(np.float64)),
                   output_scales, precision, blocks=blocks, input_scale=input_scale)
               for i in range(0, len(x_int8), batch)]
    finally:
        model.float()
    return torch.cat(out)


def predict(model, x_int8: np.ndarray, output_scales, batch: int = 512,
            precision=None, **kwargs) -> np.ndarray:
    """Class per input through :func:`quantised_forward` (``kwargs``: its ``blocks`` and
    ``input_scale``)."""
    return quantised_logits(model, x_int8, output_scales, batch, precision,
                            **kwargs).argmax(1).numpy()
