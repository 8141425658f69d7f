"""Float GSC model -> NetSpec: fold, quantise, pack, write.

The network is walked as *blocks*: a weighted layer, its batch norm, its
max-pool and its activation (k-WTA or ReLU), in the order the hardware runs
them (weighted layer, requantise, pool, k-WTA). Calibration data sets each
block's int8 output scale from the activations the float model actually
produces.

Precision per block (:class:`Precision`): the first layer gets 16-bit
weights and every block followed by a local k-WTA hands it 4 fraction bits
by default; docs/default-model.md measures that this is what brings the int8
model's top-1 to within 1% of the float model's (``Precision.int8()`` is
the plain int8 export).
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
from ..netspec import (KWTA, MAX_FRAC_BITS, MAX_WEIGHT_BITS, MIN_WEIGHT_BITS, Conv2d, InputSpec,
                       Linear, MaxPool2d, NetSpec, save)
from .pack import pack
from .quantise import QuantisedLayer, activation_scale, fold_batch_norm, quantise_layer

__all__ = ["Block", "Precision", "gsc_blocks", "quantise_model", "export_model"]


@dataclass
class Block:
    """One weighted layer and what follows it up to the next weighted layer."""

    name: str  # the layer's name in the NetSpec
    layer: nn.Module  # CompSparseConv2d or CompSparseLinear
    bn: nn.Module | None
    pool: nn.MaxPool2d | None
    activation: nn.Module | None  # KWinners, KWinners2d, nn.ReLU or None
    output_stage: str  # forward_with_activations key of the block's final output


#: Default weight bits of a model's first layer (the others get 8).
FIRST_LAYER_WEIGHT_BITS = 16
#: Default fraction bits a block hands a local k-WTA after it (the others get 0).
LOCAL_KWTA_FRAC_BITS = 4


@dataclass(frozen=True)
class Precision:
    """Weight bits of each block and fraction bits each block hands its k-WTA, by block name.

    Blocks not named get 8-bit weights and no fraction bits. ``frac_bits``
    may only name a block whose output goes to a k-WTA (which rounds the
    finer values back to int8). None (the default) stands for the default
    rule: :data:`FIRST_LAYER_WEIGHT_BITS` for the first block, and
    :data:`LOCAL_KWTA_FRAC_BITS` for every block followed by a local k-WTA.
    """

    weight_bits: dict | None = None
    frac_bits: dict | None = None

    @classmethod
    def int8(cls) -> "Precision":
        """Every weight int8, every k-WTA on the int8 grid (NetSpec version 1 arithmetic)."""
        return cls(weight_bits={}, frac_bits={})

    @classmethod
    def parse(cls, weight_bits: str | None = None, frac_bits: str | None = None) -> "Precision":
        """From ``"conv1=16,conv2=8"`` strings (``"none"``: all default); None keeps the default."""
        def table(text, what):
            if text.strip().lower() == "none":
                return {}
            entries = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                name, sep, value = item.partition("=")
                if not sep or not value.strip().lstrip("-").isdigit():
                    raise ValueError(f"{what}: {item!r} is not LAYER=BITS (e.g. conv1=16)")
                entries[name.strip()] = int(value)
            return entries
        return cls(weight_bits=None if weight_bits is None else table(weight_bits, "weight bits"),
                   frac_bits=None if frac_bits is None else table(frac_bits, "fraction bits"))

    @classmethod
    def of(cls, spec: NetSpec) -> "Precision":
        """The precision a NetSpec was exported at (its packed layers' widths)."""
        return cls(weight_bits={layer.name: int(layer.weight_bits) for layer in spec.packed_layers},
                   frac_bits={layer.name: int(layer.requant.frac_bits)
                              for layer in spec.packed_layers if layer.requant is not None})

    def resolve(self, blocks) -> "Precision":
        """This precision with the default rule spelt out for ``blocks`` (explicit tables)."""
        weight_bits = ({blocks[0].name: FIRST_LAYER_WEIGHT_BITS} if self.weight_bits is None
                       else dict(self.weight_bits))
        frac_bits = ({block.name: LOCAL_KWTA_FRAC_BITS for block in blocks
                      if isinstance(block.activation, KWinners2d) and block.activation.local}
                     if self.frac_bits is None else dict(self.frac_bits))
        return Precision(weight_bits=weight_bits, frac_bits=frac_bits)

    def for_blocks(self, blocks) -> tuple[list, list]:
        """``(weight_bits, frac_bits)`` per block; ValueError naming an unknown or unfit block."""
        names = [block.name for block in blocks]
        resolved = self.resolve(blocks)
        for what, table in (("weight_bits", resolved.weight_bits),
                            ("frac_bits", resolved.frac_bits)):
            unknown = sorted(set(table) - set(names))
            if unknown:
                raise ValueError(f"{what} names {unknown}, which are not layers of this model "
                                 f"(its layers: {names})")
        for what, table, low, high in (
                ("weight_bits", resolved.weight_bits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS),
                ("frac_bits", resolved.frac_bits, 0, MAX_FRAC_BITS)):
            for name, bits in table.items():
                if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
                    raise ValueError(f"{what} of {name!r} must be an integer in [{low}, {high}], "
                                     f"got {bits!r}")
        for block in blocks:
            if resolved.frac_bits.get(block.name, 0) and not isinstance(
                    block.activation, (KWinners, KWinners2d)):
                raise ValueError(f"frac_bits for {block.name!r}: its output goes to no k-WTA, "
                                 f"so nothing would round the extra fraction bits away")
        return ([int(resolved.weight_bits.get(name, 8)) for name in names],
                [int(resolved.frac_bits.get(name, 0)) for name in names])

    def as_dict(self) -> dict:
        return {"weight_bits": self.weight_bits, "frac_bits": self.frac_bits}


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
                   output_scales=None, precision: Precision | None = None) -> list[QuantisedLayer]:
    """Integer parameters of every block, output scales from ``calibration`` (int8 features).

    ``output_scales`` (every block's but the last's) are used as given
    instead: a quantisation-aware fine-tuned model keeps the scales it was
    trained with, and ``calibration`` may then be None. ``precision``
    defaults to :class:`Precision`'s defaults.
    """
    model.eval()
    blocks = gsc_blocks(model) if blocks is None else blocks
    weight_bits, frac_bits = (precision or Precision()).for_blocks(blocks)
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
                           relu=isinstance(block.activation, nn.ReLU),
                           weight_bits=weight_bits[index], frac_bits=frac_bits[index])
        quantised.append(q)
        scale = q.output_scale
    return quantised


def _kwta_layer(name, activation, shape, frac_bits):
    if isinstance(activation, KWinners2d):
        mode = "local" if activation.local else "global"
        units = shape[0] if activation.local else math.prod(shape)
        return KWTA(name=name, in_shape=shape, mode=mode, k=activation.k_for(units, training=False),
                    frac_bits=frac_bits)
    return KWTA(name=name, in_shape=shape, mode="global",
                k=activation.k_for(activation.n_units, training=False), frac_bits=frac_bits)


def _spec_layers(model, quantised, blocks):
    layers, shape = [], tuple(model.config.in_shape)
    for block, q in zip(blocks, quantised):
        layer = block.layer
        support = (layer.dense_weight_2d().detach() != 0).numpy() | _owned(layer)
        weights, ids = pack(q.weight, layer.n, support=support)
        common = dict(name=block.name, n=layer.n, weights=weights, kernel_ids=ids, bias=q.bias,
                      requant=q.requant, weight_bits=q.weight_bits)
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
            layers.append(_kwta_layer(block.output_stage, block.activation, shape,
                                      q.requant.frac_bits))
    return layers


def _owned(layer) -> np.ndarray:
    """Positions each kernel owns by the model's assignment (even where its weight is 0)."""
    owned = np.zeros(layer.out_features * layer.fan_in, bool)
    owned[layer._scatter_dst.numpy()] = True
    return owned.reshape(layer.out_features, layer.fan_in)


def export_model(model, calibration: np.ndarray | None, out_dir=None, *, name="gsc",
                 metadata: dict | None = None, output_scales=None,
                 precision: Precision | None = None) -> tuple[NetSpec, list[QuantisedLayer]]:
    """Quantise ``model`` with ``calibration`` features (or the given ``output_scales``,
    see :func:`quantise_model`) at ``precision``, build its NetSpec, save it if asked."""
    blocks = gsc_blocks(model)
    precision = (precision or Precision()).resolve(blocks)
    quantised = quantise_model(model, calibration, blocks, output_scales, precision)
    spec = NetSpec(name=name,
                   input=InputSpec(shape=tuple(model.config.in_shape), qmin=features.QMIN,
                                   qmax=features.QMAX, quant=features.input_quant_spec()),
                   layers=tuple(_spec_layers(model, quantised, blocks)),
                   classes=tuple(CLASSES[:model.config.classes]))
    if out_dir is not None:
        meta = dict(metadata or {})
        meta["precision"] = precision.as_dict()
        meta["scales"] = {layer.name: {"input": q.input_scale, "output": q.output_scale}
                          for layer, q in zip(spec.packed_layers, quantised)}
        if calibration is not None:
            meta["calibration_inputs"] = int(len(calibration))
        save(spec, out_dir, metadata=meta)
    return spec, quantised
