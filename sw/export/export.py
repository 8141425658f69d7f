"""Float GSC model -> NetSpec: fold, quantise, pack, write.

The network is walked as *blocks*: a weighted layer, its batch norm, its
max-pool and its activation (k-WTA or ReLU), in the order the hardware runs
them (weighted layer, requantise, pool, k-WTA). Calibration data sets each
block's int8 output scale from the activations the float model actually
produces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import features
from ..data.gsc import CLASSES
from ..model import CompSparseConv2d, KWinners, KWinners2d
from ..netspec import KWTA, Conv2d, InputSpec, Linear, MaxPool2d, NetSpec, save
from .pack import pack
from .quantise import QuantisedLayer, activation_scale, fold_batch_norm, quantise_layer

__all__ = ["Block", "gsc_blocks", "quantise_model", "export_model"]


@dataclass
class Block:
    """One weighted layer and what follows it up to the next weighted layer."""

    name: str  # the layer's name in the NetSpec
    layer: nn.Module  # CompSparseConv2d or CompSparseLinear
    bn: nn.Module | None
    pool: nn.MaxPool2d | None
    activation: nn.Module | None  # KWinners, KWinners2d, nn.ReLU or None
    output_stage: str  # forward_with_activations key of the block's final output


def gsc_blocks(model) -> list[Block]:
    """The four blocks of :class:`cosparse.sw.model.GSCNet`."""
    return [Block("conv1", model.conv1, model.bn1, model.pool1, model.kwta1, "kwta1"),
            Block("conv2", model.conv2, model.bn2, model.pool2, model.kwta2, "kwta2"),
            Block("fc1", model.fc1, model.bn3, None, model.kwta3, "kwta3"),
            Block("fc2", model.fc2, None, None, None, "fc2")]


def _folded(block: Block):
    layer = block.layer
    weight = layer.dense_weight_2d().detach().double().numpy()
    bias = None if layer.bias is None else layer.bias.detach().double().numpy()
    if block.bn is None:
        return weight, (np.zeros(len(weight)) if bias is None else bias)
    if block.bn.affine:
        raise ValueError("batch norm with affine=True is not supported: the GSC net uses "
                         "affine=False")
    return fold_batch_norm(weight, bias, block.bn.running_mean.double().numpy(),
                           block.bn.running_var.double().numpy(), block.bn.eps)


@torch.no_grad()
def quantise_model(model, calibration: np.ndarray | None, blocks=None,
                   output_scales=None) -> list[QuantisedLayer]:
    """Integer parameters of every block, output scales from ``calibration`` (int8 features).

    ``output_scales`` (every block's but the last's) are used as given
    instead: a quantisation-aware fine-tuned model keeps the scales it was
    trained with, and ``calibration`` may then be None.
    """
    model.eval()
    blocks = gsc_blocks(model) if blocks is None else blocks
    if output_scales is None:
        acts = model.forward_with_activations(
            torch.from_numpy(features.dequantise_features(calibration)))
    elif len(output_scales) != len(blocks) - 1:
        raise ValueError(f"need {len(blocks) - 1} output scales, got {len(output_scales)}")
    scale = 1.0 / features.QMAX  # the float model's input is q / QMAX: exact
    quantised = []
    for index, block in enumerate(blocks):
        weight, bias = _folded(block)
        last = index == len(blocks) - 1
        if last:
            out_scale = None
        elif output_scales is not None:
            out_scale = float(output_scales[index])
        else:
            out_scale = activation_scale(acts[block.output_stage].numpy())
        q = quantise_layer(weight, bias, scale, out_scale,
                           relu=isinstance(block.activation, nn.ReLU))
        quantised.append(q)
        scale = q.output_scale
    return quantised


def _kwta_layer(name, activation, shape):
    if isinstance(activation, KWinners2d):
        mode = "local" if activation.local else "global"
        units = shape[0] if activation.local else math.prod(shape)
        return KWTA(name=name, in_shape=shape, mode=mode, k=activation.k_for(units, training=False))
    return KWTA(name=name, in_shape=shape, mode="global",
                k=activation.k_for(activation.n_units, training=False))


def _spec_layers(model, quantised, blocks):
    layers, shape = [], tuple(model.config.in_shape)
    for block, q in zip(blocks, quantised):
        layer = block.layer
        support = (layer.dense_weight_2d().detach() != 0).numpy() | _owned(layer)
        weights, ids = pack(q.weight, layer.n, support=support)
        common = dict(name=block.name, n=layer.n, weights=weights, kernel_ids=ids, bias=q.bias,
                      requant=q.requant)
        if isinstance(layer, CompSparseConv2d):
            spec_layer = Conv2d(in_shape=shape, out_channels=layer.out_features,
                                kernel=layer.kernel_size, **common)
        else:
            spec_layer = Linear(in_features=math.prod(shape), out_features=layer.out_features,
                                **common)
        layers.append(spec_layer)
        shape = spec_layer.out_shape
        if block.pool is not None:
            layers.append(MaxPool2d(name=block.output_stage.replace("kwta", "pool"), in_shape=shape,
                                    size=int(block.pool.kernel_size)))
            shape = layers[-1].out_shape
        if isinstance(block.activation, (KWinners, KWinners2d)):
            layers.append(_kwta_layer(block.output_stage, block.activation, shape))
    return layers


def _owned(layer) -> np.ndarray:
    """Positions each kernel owns by the model's assignment (even where its weight is 0)."""
    owned = np.zeros(layer.out_features * layer.fan_in, bool)
    owned[layer._scatter_dst.numpy()] = True
    return owned.reshape(layer.out_features, layer.fan_in)


def export_model(model, calibration: np.ndarray | None, out_dir=None, *, name="gsc",
                 metadata: dict | None = None,
                 output_scales=None) -> tuple[NetSpec, list[QuantisedLayer]]:
    """Quantise ``model`` with ``calibration`` features (or the given ``output_scales``,
    see :func:`quantise_model`), build its NetSpec, save it if asked."""
    blocks = gsc_blocks(model)
    quantised = quantise_model(model, calibration, blocks, output_scales)
    spec = NetSpec(name=name,
                   input=InputSpec(shape=tuple(model.config.in_shape), qmin=features.QMIN,
                                   qmax=features.QMAX, quant=features.input_quant_spec()),
                   layers=tuple(_spec_layers(model, quantised, blocks)),
                   classes=tuple(CLASSES[:model.config.classes]))
    if out_dir is not None:
        meta = dict(metadata or {})
        meta["scales"] = {layer.name: {"input": q.input_scale, "output": q.output_scale}
                          for layer, q in zip(spec.packed_layers, quantised)}
        if calibration is not None:
            meta["calibration_inputs"] = int(len(calibration))
        save(spec, out_dir, metadata=meta)
    return spec, quantised
