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

__all__ = ["Block", "Precision", "gsc_blocks", "model_blocks", "quantise_model", "export_network",
           "export_model"]


@dataclass
class Block:
    """One weighted layer and what follows it up to the next weighted layer."""

    name: str  # the layer's name in the NetSpec
    layer: nn.Module  # CompSparseConv2d or CompSparseLinear
    bn: nn.Module | None
    pool: nn.MaxPool2d | None
    activation: nn.Module | None  # KWinners, KWinners2d, nn.ReLU or None
    output_stage: str  # qualified name of the module whose output is the block's output
    pool_name: str | None = None  # the pool's NetSpec layer name
    activation_name: str | None = None  # the k-WTA's NetSpec layer name


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
    dense = model.config.dense  # ReLU, not k-WTA: no k-WTA layer names
    return [Block("conv1", model.conv1, model.bn1, model.pool1, model.kwta1, "kwta1", "pool1",
                  None if dense else "kwta1"),
            Block("conv2", model.conv2, model.bn2, model.pool2, model.kwta2, "kwta2", "pool2",
                  None if dense else "kwta2"),
            Block("fc1", model.fc1, model.bn3, None, model.kwta3, "kwta3", None,
                  None if dense else "kwta3"),
            Block("fc2", model.fc2, None, None, None, "fc2")]


def model_blocks(model) -> list[Block]:
    """The blocks of any sequential sparse net (cosparse.sw.export.sequential), named after
    its modules; :class:`~.sequential.ExportError` names a module that cannot be exported."""
    from .sequential import blocks_of
    return blocks_of(model, Block)


def float_inputs(q: np.ndarray, input_scale: float) -> np.ndarray:
    """The float model's input ``q * input_scale`` for int8 ``q``, as float32.

    Computed in float64 and rounded once, which for ``1 / 127`` gives exactly
    cosparse.sw.features.dequantise_features (every int8 value checked).
    """
    return (np.asarray(q, np.float64) * float(input_scale)).astype(np.float32)


def _block_outputs(model, blocks, x: torch.Tensor) -> dict:
    """Each block's output (its ``output_stage`` module's) on ``x``, by forward hooks."""
    modules = dict(model.named_modules())
    outputs, handles = {}, []
    for block in blocks:
        def hook(module, args, output, key=block.output_stage):
            outputs[key] = output.detach()
        handles.append(modules[block.output_stage].register_forward_hook(hook))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _folded(block: Block):
    layer = block.layer
    weight = layer.dense_weight_2d().detach().double().numpy()
    bias = None if layer.bias is None else layer.bias.detach().double().numpy()
    if block.bn is None:
        return weight, (np.zeros(len(weight)) if bias is None else bias)
    weight, bias = fold_batch_norm(weight, bias, block.bn.running_mean.double().numpy(),
                                   block.bn.running_var.double().numpy(), block.bn.eps)
    if block.bn.affine:  # then gamma * (normalised) + beta
        gamma = block.bn.weight.detach().double().numpy()
        return weight * gamma[:, None], bias * gamma + block.bn.bias.detach().double().numpy()
    return weight, bias


@torch.no_grad()
def quantise_model(model, calibration: np.ndarray | None, blocks=None,
                   output_scales=None, precision: Precision | None = None,
                   input_scale: float = 1.0 / features.QMAX) -> list[QuantisedLayer]:
    """Integer parameters of every block, output scales from ``calibration`` (int8 inputs).

    The float model's input is ``calibration * input_scale`` (the GSC
    features' ``q / 127`` by default). ``output_scales`` (every block's but
    the last's) are used as given instead: a quantisation-aware fine-tuned
    model keeps the scales it was trained with, and ``calibration`` may then
    be None. ``blocks`` default to :func:`gsc_blocks`; ``precision`` to
    :class:`Precision`'s defaults.
    """
    model.eval()
    blocks = gsc_blocks(model) if blocks is None else blocks
    weight_bits, frac_bits = (precision or Precision()).for_blocks(blocks)
    if output_scales is None:
        if calibration is None:
            raise ValueError("calibration inputs are needed to set the output scales "
                             "(or give output_scales)")
        acts = _block_outputs(model, blocks,
                              torch.from_numpy(float_inputs(calibration, input_scale)))
    elif len(output_scales) != len(blocks) - 1:
        raise ValueError(f"need {len(blocks) - 1} output scales, got {len(output_scales)}")
    scale = float(input_scale)
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


def _spec_layers(in_shape, quantised, blocks):
    layers, shape = [], tuple(in_shape)
    for block, q in zip(blocks, quantised):
        layer = block.layer
        support = (layer.dense_weight_2d().detach() != 0).numpy() | _owned(layer)
        weights, ids = pack(q.weight, layer.n, support=support)
        common = dict(name=block.name, n=layer.n, weights=weights, kernel_ids=ids, bias=q.bias,
                      requant=q.requant, weight_bits=q.weight_bits,
                      pattern=getattr(layer, "pattern", "random"))
        if isinstance(layer, CompSparseConv2d):
            spec_layer = Conv2d(in_shape=shape, out_channels=layer.out_features,
                                kernel=layer.kernel_size, stride=layer.stride,
                                padding=layer.padding, **common)
        else:
            spec_layer = Linear(in_features=math.prod(shape), out_features=layer.out_features,
                                **common)
        layers.append(spec_layer)
        shape = spec_layer.out_shape
        if block.pool is not None:
            size = block.pool.kernel_size
            size = size[0] if isinstance(size, tuple) else size
            if shape[1] % size or shape[2] % size:
                from .sequential import ExportError
                raise ExportError(f"{block.pool_name!r}: MaxPool2d({size}) of a {shape[1]}x"
                                  f"{shape[2]} map drops its last rows or columns, which the "
                                  f"hardware does not; make the map divisible by {size}")
            layers.append(MaxPool2d(name=block.pool_name, in_shape=shape,
                                    size=int(size)))
            shape = layers[-1].out_shape
        if isinstance(block.activation, (KWinners, KWinners2d)):
            layers.append(_kwta_layer(block.activation_name, block.activation, shape,
                                      q.requant.frac_bits))
    return layers


def _owned(layer) -> np.ndarray:
    """Positions each kernel owns by the model's assignment (even where its weight is 0)."""
    owned = np.zeros(layer.out_features * layer.fan_in, bool)
    owned[layer._scatter_dst.numpy()] = True
    return owned.reshape(layer.out_features, layer.fan_in)


def export_network(model, calibration: np.ndarray | None, out_dir=None, *,
                   input_scale: float, classes, input_range: tuple | None = None,
                   input_quant: dict | None = None, input_shape=None, name: str = "net",
                   metadata: dict | None = None, output_scales=None,
                   precision: Precision | None = None, blocks=None
                   ) -> tuple[NetSpec, list[QuantisedLayer]]:
    """Any sequential sparse net -> NetSpec (saved to ``out_dir`` if given).

    ``calibration``: int8 inputs ``[B, C, H, W]``; the model's input is
    ``calibration * input_scale``. ``classes``: one name per output.
    ``input_range``: ``(qmin, qmax)`` of the int8 inputs (default: ``(0,
    127)`` when the calibration has no negative value, else ``(-128,
    127)``). ``input_quant``: how inputs are quantised, recorded in the
    NetSpec (default ``{"kind": "scaled", "scale": input_scale}``).
    ``input_shape`` is needed only without calibration. ``blocks`` default to
    :func:`model_blocks`.
    """
    blocks = model_blocks(model) if blocks is None else blocks
    if calibration is not None:
        calibration = np.asarray(calibration)
        if calibration.ndim != 4 or not np.issubdtype(calibration.dtype, np.integer):
            raise ValueError(f"calibration must be integer inputs [B, C, H, W], got "
                             f"{calibration.dtype} {calibration.shape}")
        if input_shape is None:
            input_shape = calibration.shape[1:]
    if input_shape is None:
        raise ValueError("input_shape is needed when no calibration inputs are given")
    if input_range is None:
        input_range = (0, 127) if calibration is None or calibration.min() >= 0 else (-128, 127)
    qmin, qmax = (int(v) for v in input_range)
    if calibration is not None and (calibration.min() < qmin or calibration.max() > qmax):
        raise ValueError(f"calibration inputs span [{calibration.min()}, {calibration.max()}], "
                         f"outside the input range [{qmin}, {qmax}]")
    classes = tuple(str(c) for c in classes)
    if len(classes) != blocks[-1].layer.out_features:
        raise ValueError(f"{len(classes)} class names for {blocks[-1].layer.out_features} "
                         f"outputs of the last layer {blocks[-1].name!r}")
    precision = (precision or Precision()).resolve(blocks)
    quantised = quantise_model(model, calibration, blocks, output_scales, precision,
                               input_scale=input_scale)
    quant = {"kind": "scaled", "scale": float(input_scale)} if input_quant is None else input_quant
    spec = NetSpec(name=name,
                   input=InputSpec(shape=tuple(int(d) for d in input_shape), qmin=qmin,
                                   qmax=qmax, quant=quant),
                   layers=tuple(_spec_layers(input_shape, quantised, blocks)), classes=classes)
    if out_dir is not None:
        meta = dict(metadata or {})
        meta["precision"] = precision.as_dict()
        meta["scales"] = {layer.name: {"input": q.input_scale, "output": q.output_scale}
                          for layer, q in zip(spec.packed_layers, quantised)}
        if calibration is not None:
            meta["calibration_inputs"] = int(len(calibration))
        save(spec, out_dir, metadata=meta)
    return spec, quantised


def export_model(model, calibration: np.ndarray | None, out_dir=None, *, name="gsc",
                 metadata: dict | None = None, output_scales=None,
                 precision: Precision | None = None) -> tuple[NetSpec, list[QuantisedLayer]]:
    """The GSC net with its features' input quantisation and class names
    (:func:`export_network` with ``calibration`` int8 features or the given
    ``output_scales``, see :func:`quantise_model`). ``input.quant`` records the
    feature normalisation of ``model.config.features``; the calibration
    features must have been computed with it."""
    return export_network(model, calibration, out_dir, input_scale=1.0 / features.QMAX,
                          classes=CLASSES[:model.config.classes],
                          input_range=(features.QMIN, features.QMAX),
                          input_quant=features.input_quant_spec(model.config.features),
                          input_shape=tuple(model.config.in_shape), name=name, metadata=metadata,
                          output_scales=output_scales, precision=precision)
