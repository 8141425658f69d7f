"""Hardware configuration of a generated network: how much parallelism each layer gets.

A NetSpec says *what* to compute; an :class:`HwConfig` says *how wide* the
engine computing it is. Both are needed to build a design, and the summary
and cycle model read the same config, so one object travels through the
generator instead of loose keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..sw.netspec import KWTA, Conv2d, Linear, MaxPool2d, NetSpec
from .engine.tiling import Tiling

__all__ = ["LayerConfig", "HwConfig", "accumulator_bits"]


def accumulator_bits(layer) -> int:
    """Signed width that holds every partial sum and ``acc + bias`` of a packed layer.

    Every partial sum of ``acc`` is bounded by ``sum |W| * 128``, which is at
    most the NetSpec's :meth:`accumulator_bound`, so one width serves the
    accumulators and the biased value sent to requantisation (at least one
    signed product of an int8 and a ``weight_bits`` weight and a sign: 17
    bits for 8-bit weights, 13 for 4-bit, 25 for 16-bit).
    """
    return max(layer.accumulator_bound().bit_length() + 1, 9 + layer.weight_bits)


@dataclass(frozen=True)
class LayerConfig:
    """Parallelism of one packed layer's engine.

    ``lanes`` groups are multiplied per cycle out of the layer's ``G``
    packed groups; fewer lanes than groups take ``ceil(G / lanes)`` passes
    (cycles) per activation and offset tile, trading speed for area.
    ``offsets`` is the number of kernel offsets a conv engine does per cycle
    (hw/engine/tiling.py: 1 walks them one by one, ``K*K`` does a whole
    kernel; 1 for linear layers), so an engine has ``lanes * offsets``
    multipliers. ``acc_bits`` is the accumulator width.
    """

    lanes: int
    acc_bits: int
    offsets: int = 1

    def passes(self, groups: int) -> int:
        return -(-groups // self.lanes)


@dataclass(frozen=True)
class HwConfig:
    """Per packed layer :class:`LayerConfig`, in NetSpec order, plus global choices.

    ``ports`` is the number of activation ports per engine (only 1 is built).
    ``fifo_depth`` is the depth of the stream FIFO placed after every engine
    and k-WTA (0: direct connection), which absorbs rate differences between
    neighbouring engines.
    """

    layers: tuple
    ports: int = 1
    fifo_depth: int = 4

    def __post_init__(self):
        if not isinstance(self.layers, tuple) or not all(isinstance(c, LayerConfig)
                                                         for c in self.layers):
            raise TypeError(f"layers must be a tuple of LayerConfig, got {self.layers!r}")
        if self.ports != 1:
            raise ValueError(f"ports must be 1 (multi-port engines are not built yet), "
                             f"got {self.ports!r}")
        if not isinstance(self.fifo_depth, int) or self.fifo_depth < 0:
            raise ValueError(f"fifo_depth must be a non-negative integer, got {self.fifo_depth!r}")

    @classmethod
    def default_for(cls, spec: NetSpec, dense: bool = False, **kwargs) -> "HwConfig":
        """A balanced pipeline: full-speed convolutions, linear layers as fast as their drain.

        A conv engine gets one lane per packed group and the whole kernel as
        one offset tile, so it spends one cycle per non-zero input. A linear
        engine drains one channel per cycle, so it gets only the lanes that
        keep its accumulation (``nonzero inputs * passes``) within its drain
        (``out_features`` cycles): ``passes = out_features // nonzero``, the
        non-zero inputs estimated from the k of the k-WTA before it (every
        input without one). ``dense`` describes the dense baseline: its
        layers have ``n = 1`` and therefore ``out_channels`` groups, it
        passes zeros, so k-WTAs do not thin its inputs, and its convolutions
        walk one kernel offset per cycle (every weight times every input,
        one lane per kernel); its linear layers get only the lanes that keep
        them within the slowest convolution's cycles (all their groups when
        the net has no convolution), so the baseline is a balanced pipeline
        too rather than one with 1,500 multipliers idle 99% of the time;
        pass the NetSpec as given (packed or already unpacked).
        """
        layers = []
        nonzero = prod(spec.input.shape)
        # The dense baseline's convolutions take every (output position, input channel,
        # offset) once per cycle; its linear layers need go no faster than the slowest.
        conv_cycles = max((prod(layer.out_shape[1:]) * layer.fan_in
                           for layer in spec.layers if isinstance(layer, Conv2d)), default=0)
        for layer in spec.layers:
            if isinstance(layer, (Conv2d, Linear)):
                groups = layer.out_channels if dense else layer.groups
                if isinstance(layer, Conv2d):
                    config = LayerConfig(lanes=groups, acc_bits=accumulator_bits(layer),
                                         offsets=1 if dense else layer.kernel ** 2)
                else:
                    budget = conv_cycles if dense else layer.out_features
                    passes = min(groups, max(1, budget // max(1, nonzero)))
                    config = LayerConfig(lanes=-(-groups // passes),
                                         acc_bits=accumulator_bits(layer))
                layers.append(config)
                nonzero = prod(layer.out_shape)
            elif isinstance(layer, MaxPool2d):
                nonzero = prod(layer.out_shape)
            elif isinstance(layer, KWTA) and not dense:
                positions = prod(layer.in_shape[1:]) if layer.mode == "local" else 1
                nonzero = min(nonzero, layer.k * positions)
        return cls(layers=tuple(layers), **kwargs)

    def validate(self, spec: NetSpec):
        """Check that this config fits ``spec``; raise ValueError naming the layer and field."""
        packed = spec.packed_layers
        if len(self.layers) != len(packed):
            raise ValueError(f"HwConfig has {len(self.layers)} layer configs but NetSpec "
                             f"{spec.name!r} has {len(packed)} conv2d/linear layers")
        for layer, cfg in zip(packed, self.layers):
            if not isinstance(cfg.lanes, int) or cfg.lanes < 1:
                raise ValueError(f"layer {layer.name!r}: lanes must be a positive integer, "
                                 f"got {cfg.lanes!r}")
            if not isinstance(cfg.offsets, int) or isinstance(cfg.offsets, bool):
                raise ValueError(f"layer {layer.name!r}: offsets must be an integer, "
                                 f"got {cfg.offsets!r}")
            if isinstance(layer, Conv2d):
                try:
                    Tiling(layer.kernel, cfg.offsets, tuple(layer.out_shape[1:]), 1)
                except ValueError as error:
                    raise ValueError(f"layer {layer.name!r}: {error}") from None
            elif cfg.offsets != 1:
                raise ValueError(f"layer {layer.name!r}: offsets must be 1 for a linear layer, "
                                 f"got {cfg.offsets!r}")
            need = accumulator_bits(layer)
            if not isinstance(cfg.acc_bits, int) or cfg.acc_bits < need:
                raise ValueError(f"layer {layer.name!r}: acc_bits = {cfg.acc_bits!r} cannot hold "
                                 f"the accumulator bound {layer.accumulator_bound()} "
                                 f"(needs {need} bits)")
