"""Hardware configuration of a generated network: how much parallelism each layer gets.

A NetSpec says *what* to compute; an :class:`HwConfig` says *how wide* the
engine computing it is. Both are needed to build a design, and the summary
and cycle model read the same config, so one object travels through the
generator instead of loose keyword arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path

from ..sw.netspec import KWTA, Conv2d, Linear, MaxPool2d, NetSpec
from .engine.tiling import Tiling
from .kwta.local import STEP_BITS

__all__ = ["LayerConfig", "HwConfig", "accumulator_bits", "winners_before", "drain_width", "search_bits", "load_hw_config", "save_hw_config",
           "LAYER_FIELDS", "GLOBAL_FIELDS", "ENGINES", "ACCUMULATORS"]

#: Per-layer knobs a hardware-config file may set (docs/hardware.md).
LAYER_FIELDS = ("lanes", "offsets", "acc_bits", "fifo_depth", "engine", "accumulators", "width",
                "search_bits")
#: Conv engine kinds (LayerConfig ``engine``): scatter (hw/engine/conv.py), window
#: (hw/engine/window.py) or gather (hw/engine/gather.py).
ENGINES = ("scatter", "window", "gather")
#: Accumulator organisations of a scatter conv engine (:class:`LayerConfig`).
ACCUMULATORS = ("word", "kernel")
#: Whole-design knobs a hardware-config file may set.
GLOBAL_FIELDS = ("fifo_depth", "ports", "input_width")


def winners_before(spec: NetSpec, layer) -> int | None:
    """``k`` of the local k-WTA right before conv ``layer`` in ``spec`` (the most beats a
    position of its input carries: what a gather engine needs), None when there is none."""
    at = spec.layers.index(layer)
    before = spec.layers[at - 1] if at > 0 else None
    if isinstance(layer, Conv2d) and isinstance(before, KWTA) and before.mode == "local":
        return before.k
    return None


def accumulator_bits(layer) -> int:
    """Signed width that holds every partial sum and ``acc + bias`` of a packed layer.

    Every partial sum of ``acc`` is bounded by ``sum |W| * 128``, which is at
    most the NetSpec's :meth:`accumulator_bound`, so one width serves the
    accumulators and the biased value sent to requantisation (at least one
    signed product of an int8 and a ``weight_bits`` weight and a sign: 17
    bits for 8-bit weights, 13 for 4-bit, 25 for 16-bit).
    """
    return max(layer.accumulator_bound().bit_length() + 1, 9 + layer.weight_bits)


def _spread(k: int, size: int, width: int) -> list:
    """Winners per word of ``ceil(size / width)`` words when ``k`` winners fill whole
    words: the most cycles a wide k-WTA's emit pass takes for ``k``,
    ``words - ceil(k / width) + k``."""
    words = -(-size // width)
    return [min(width, max(0, k - w * width)) for w in range(words)]


def drain_width(layer, kwta, pace: int) -> int:
    """Smallest drain width (a divisor of ``layer.n``, at most the outputs: hw/engine/drain.py)
    at which the linear ``layer``'s drain, ``ceil(out_features / width)`` cycles, and the global
    ``kwta`` after it (:func:`~.kwta.global_wide.wide_scan_cycles` with ``k`` winners;
    the one-value unit's :func:`~.kwta.global_.scan_cycles` at width 1) take at most
    ``pace`` cycles per input; the fastest divisor when none does."""
    from .kwta.global_ import scan_cycles
    from .kwta.global_wide import wide_scan_cycles

    size = layer.out_features

    def cycles(width):
        if width == 1:
            return max(size, scan_cycles(size, kwta.frac_bits))
        return max(-(-size // width),
                   wide_scan_cycles(size, width, kwta.frac_bits, _spread(kwta.k, size, width)))

    divisors = [d for d in range(1, min(layer.n, size) + 1) if layer.n % d == 0]
    fitting = [d for d in divisors if cycles(d) <= pace]
    return fitting[0] if fitting else min(divisors, key=cycles)


def search_bits(spec: NetSpec, layer, pace: int) -> int:
    """Threshold bits per search step of the local k-WTA after conv ``layer`` (2 when it
    has none): 2, unless its searches, one position every ``1 + ceil((8 + f) / 2)``
    cycles (:func:`~.kwta.local.search_cycles`), take more than ``pace`` cycles per input
    and 3 bits a step takes fewer."""
    from .kwta.local import search_cycles

    following = [l for l in spec.layers[spec.layers.index(layer) + 1:][:2]
                 if isinstance(l, KWTA)]
    if not isinstance(layer, Conv2d) or not following or following[0].mode != "local":
        return 2
    kwta = following[0]
    positions = prod(kwta.in_shape[1:])
    slow = positions * search_cycles(kwta.frac_bits, 2)
    return 3 if slow > pace and positions * search_cycles(kwta.frac_bits, 3) < slow else 2


@dataclass(frozen=True)
class LayerConfig:
    """Parallelism of one packed layer's engine.

    ``lanes`` groups are multiplied per cycle out of the layer's ``G``
    packed groups; fewer lanes than groups take ``ceil(G / lanes)`` passes
    (cycles) per activation and offset tile, trading speed for area.
    ``offsets`` is the number of kernel offsets a conv engine does per cycle
    (hw/engine/tiling.py: 1 walks them one by one, ``K*K`` does a whole
    kernel; 1 for linear layers), so an engine has ``lanes * offsets``
    multipliers. ``acc_bits`` is the accumulator width. ``fifo_depth`` is the
    depth of the stream FIFO in front of this engine (None: the
    :class:`HwConfig`'s ``fifo_depth``; 0: a direct connection). ``engine``
    picks a conv layer's engine: ``"scatter"`` (every non-zero input added
    into the outputs it reaches, hw/engine/conv.py) or ``"window"`` (one
    output position per cycle from a line buffer, no accumulator memory,
    hw/engine/window.py: one-channel inputs only; it does the whole kernel
    each cycle, ``lanes x K*K`` multipliers, and ignores ``offsets``) or
    ``"gather"`` (one output position per ``ceil(K*K / offsets)`` cycles, the
    ``k`` winners of ``offsets`` input positions a cycle, hw/engine/gather.py:
    only for a conv layer right after a local k-WTA; ``lanes x offsets x k``
    multipliers, ``offsets`` any of 1 to ``K*K``).
    ``accumulators`` organises a scatter conv engine's sums: ``"word"``, one
    memory word per output position and pass holding its ``lanes x n`` sums
    (hw/engine/router.py), drained one position and pass per cycle;
    ``"kernel"``, one memory of single sums per bank and lane, never
    cleared and drained by difference (hw/engine/kernel_ring.py), which
    needs no per-lane selection among ``n`` sums and drains alongside the
    accumulation but takes ``n`` reads per position and pass; only for an
    engine with position-major input (a ring). Linear layers ignore it.
    ``width`` is the number of channels a linear engine's drain emits per
    beat (hw/engine/drain.py :class:`~.engine.drain.ChannelDrain`): its
    drain then takes ``out_features / width`` cycles instead of
    ``out_features``, and the global k-WTA after it takes ``width`` values
    per cycle (hw/kwta/global_wide.py). Only a linear layer followed by a
    global k-WTA may have ``width > 1``, and ``width`` must divide its ``n``
    (a beat is then ``width`` sums of one kernel group, one accumulator word).
    ``search_bits`` is the number of threshold bits the local k-WTA after a
    conv engine decides per search step (hw/kwta/local.py ``step_bits``, 2
    or 3): 3 costs 7 comparators and counts per channel instead of 3 and
    makes a position's search ``1 + ceil((8 + f) / 3)`` cycles instead of
    ``1 + ceil((8 + f) / 2)``, so the k-WTA keeps pace with a fast engine
    when ``k`` is small. Other layers ignore it.
    """

    lanes: int
    acc_bits: int
    offsets: int = 1
    fifo_depth: int | None = None
    engine: str = "scatter"
    accumulators: str = "word"
    width: int = 1
    search_bits: int = 2

    def multipliers(self, layer, winners: int | None = None) -> int:
        """Multipliers of this layer's engine: ``lanes x offsets``, ``lanes x K*K`` (window),
        ``lanes x offsets x winners`` (gather: ``winners``, the ``k`` of the local k-WTA before
        the layer, :func:`winners_before`)."""
        if self.engine == "window":
            return self.lanes * layer.kernel ** 2
        if self.engine == "gather":
            if winners is None:
                raise ValueError(f"layer {layer.name!r}: a gather engine's multipliers need the "
                                 f"k of the local k-WTA before it (winners_before)")
            return self.lanes * self.offsets * winners
        return self.lanes * self.offsets

    def passes(self, groups: int) -> int:
        return -(-groups // self.lanes)


@dataclass(frozen=True)
class HwConfig:
    """Per packed layer :class:`LayerConfig`, in NetSpec order, plus global choices.

    ``ports`` is the number of activation ports per engine (only 1 is built).
    ``fifo_depth`` is the depth of the stream FIFO placed in front of every
    engine (0: direct connection), which absorbs rate differences between
    neighbouring engines; a layer's own ``fifo_depth`` overrides it.
    ``input_width`` is the number of features the network takes per cycle:
    1 (the input Sparsifier's one per cycle), or more when the first layer
    is a window engine, which then reads dense raster beats of that many
    positions (it must divide the input's width W), so the input stage
    takes ``C*H*W / input_width`` cycles rather than ``C*H*W``.
    """

    layers: tuple
    ports: int = 1
    fifo_depth: int = 4
    input_width: int = 1

    def __post_init__(self):
        if not isinstance(self.layers, tuple) or not all(isinstance(c, LayerConfig)
                                                         for c in self.layers):
            raise TypeError(f"layers must be a tuple of LayerConfig, got {self.layers!r}")
        if self.ports != 1:
            raise ValueError(f"ports must be 1 (multi-port engines are not built yet), "
                             f"got {self.ports!r}")
        if not isinstance(self.fifo_depth, int) or self.fifo_depth < 0:
            raise ValueError(f"fifo_depth must be a non-negative integer, got {self.fifo_depth!r}")
        if (not isinstance(self.input_width, int) or isinstance(self.input_width, bool)
                or self.input_width < 1):
            raise ValueError(f"input_width must be a positive integer, got {self.input_width!r}")

    def fifo_depth_of(self, index: int) -> int:
        """Depth of the FIFO in front of packed layer ``index``'s engine."""
        own = self.layers[index].fifo_depth
        return self.fifo_depth if own is None else own

    def to_dict(self, spec: NetSpec) -> dict:
        """The JSON form :func:`load_hw_config` reads: layers by ``spec``'s layer names."""
        layers = {}
        for layer, cfg in zip(spec.packed_layers, self.layers):
            entry = {"lanes": cfg.lanes, "offsets": cfg.offsets, "acc_bits": cfg.acc_bits}
            if cfg.fifo_depth is not None:
                entry["fifo_depth"] = cfg.fifo_depth
            if isinstance(layer, Conv2d):
                entry["engine"] = cfg.engine
                entry["accumulators"] = cfg.accumulators
                entry["search_bits"] = cfg.search_bits
            else:
                entry["width"] = cfg.width
            layers[layer.name] = entry
        return {"fifo_depth": self.fifo_depth, "ports": self.ports,
                "input_width": self.input_width, "layers": layers}

    @classmethod
    def from_dict(cls, data, spec: NetSpec, *, dense: bool = False) -> "HwConfig":
        """A config from its JSON form, validated against ``spec``.

        ``data["layers"]`` maps packed layer names to ``{"lanes", "offsets",
        "acc_bits", "fifo_depth", "engine"}`` (each optional); a layer not named, and a
        field not given, keeps :meth:`default_for`'s choice (``dense``: the
        dense baseline's, and ``spec`` is then the NetSpec as given, packed).
        A list of entries in NetSpec order is read too. ValueError names the
        unknown layer or field, or the layer and field of a bad value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object with 'layers', got {type(data).__name__}")
        unknown = sorted(set(data) - {"layers", *GLOBAL_FIELDS})
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; a hardware config has "
                             f"{['layers', *GLOBAL_FIELDS]}")
        if dense:
            from .generate import unpack_dense
            spec = unpack_dense(spec)
        packed = spec.packed_layers
        names = [layer.name for layer in packed]
        entries = data.get("layers", {})
        if isinstance(entries, list):
            if len(entries) != len(packed):
                raise ValueError(f"{len(entries)} layer entries, but NetSpec {spec.name!r} has "
                                 f"{len(packed)} conv2d/linear layers ({', '.join(names)})")
            entries = dict(zip(names, entries))
        if not isinstance(entries, dict):
            raise ValueError(f"'layers' must map layer names to settings, got {entries!r}")
        unknown = sorted(set(entries) - set(names))
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}: NetSpec {spec.name!r} has the "
                             f"conv2d/linear layers {names}")
        default = cls.default_for(spec, dense=dense)
        layers = []
        for name, cfg in zip(names, default.layers):
            entry = entries.get(name, {})
            if not isinstance(entry, dict):
                raise ValueError(f"layer {name!r}: expected an object of {list(LAYER_FIELDS)}, "
                                 f"got {entry!r}")
            bad = sorted(set(entry) - set(LAYER_FIELDS))
            if bad:
                raise ValueError(f"layer {name!r}: unknown field(s) {bad}; a layer has "
                                 f"{list(LAYER_FIELDS)}")
            for field, value in entry.items():
                if field == "engine":
                    if value not in ENGINES:
                        raise ValueError(f"layer {name!r}: engine must be one of "
                                         f"{list(ENGINES)}, got {value!r}")
                elif field == "accumulators":
                    if value not in ACCUMULATORS:
                        raise ValueError(f"layer {name!r}: accumulators must be one of "
                                         f"{list(ACCUMULATORS)}, got {value!r}")
                elif value is not None and (isinstance(value, bool)
                                            or not isinstance(value, int)):
                    raise ValueError(f"layer {name!r}: {field} must be an integer, "
                                     f"got {value!r}")
            layers.append(replace(cfg, **entry))
        try:
            config = cls(layers=tuple(layers), fifo_depth=data.get("fifo_depth", 4),
                         ports=data.get("ports", 1), input_width=data.get("input_width", 1))
        except TypeError as error:
            raise ValueError(str(error)) from None
        config.validate(spec)
        return config

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
        pass the NetSpec as given (packed or already unpacked). A conv
        engine with position-major input gets kernel-addressed accumulators
        where their drain, ``n`` reads per output position and pass, takes
        no more cycles than the input stage's one feature per cycle (the
        pipeline's floor), and word accumulators otherwise (the dense
        baseline: always word).

        A linear engine followed by a global k-WTA gets the smallest drain
        ``width`` (:func:`drain_width`) whose drain and wide k-WTA keep pace
        with its accumulation (or the input stage, if slower), so neither
        binds the interval (the default GSC network's fc1: width 2, 750
        cycles, against its 1,400 cycles of accumulation).

        A first conv layer with one input channel (dense-ish features) gets
        the window engine (hw/engine/window.py) instead, with the fewest
        lanes whose cycles per input (:func:`~.engine.window.window_cycles`)
        stay within :meth:`interval_floor`, the interval the rest of the
        network cannot go below anyway (the default GSC network: 8 lanes, 2
        passes, 1,568 cycles against its local k-WTA's 1,568 winners).
        """
        layers = []
        window = None  # index of the layer built as a window engine
        nonzero = prod(spec.input.shape)
        # The dense baseline's convolutions take every (output position, input channel,
        # offset) once per cycle; its linear layers need go no faster than the slowest.
        conv_cycles = max((prod(layer.out_shape[1:]) * layer.fan_in
                           for layer in spec.layers if isinstance(layer, Conv2d)), default=0)
        for layer in spec.layers:
            if isinstance(layer, (Conv2d, Linear)):
                groups = layer.out_channels if dense else layer.groups
                if isinstance(layer, Conv2d):
                    ring = bool(layers) or layer.in_shape[0] == 1
                    reads = prod(layer.out_shape[1:]) * layer.n
                    kernel = ring and not dense and reads <= prod(spec.input.shape)
                    config = LayerConfig(lanes=groups, acc_bits=accumulator_bits(layer),
                                         offsets=1 if dense else layer.kernel ** 2,
                                         accumulators="kernel" if kernel else "word")
                else:
                    budget = conv_cycles if dense else layer.out_features
                    passes = min(groups, max(1, budget // max(1, nonzero)))
                    lanes = -(-groups // passes)
                    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer))
                    after = spec.layers[spec.layers.index(layer) + 1:][:1]
                    if not dense and after and isinstance(after[0], KWTA) \
                            and after[0].mode == "global":
                        pace = max(nonzero * -(-groups // lanes), prod(spec.input.shape))
                        config = replace(config, width=drain_width(layer, after[0], pace))
                layers.append(config)
                nonzero = prod(layer.out_shape)
                if not dense and len(layers) == 1 and isinstance(layer, Conv2d) \
                        and layer.in_shape[0] == 1 and layer.requant is not None:
                    window = len(layers) - 1
            elif isinstance(layer, MaxPool2d):
                nonzero = prod(layer.out_shape)
            elif isinstance(layer, KWTA) and not dense:
                positions = prod(layer.in_shape[1:]) if layer.mode == "local" else 1
                nonzero = min(nonzero, layer.k * positions)
        if window is not None:
            widths = [cfg.width for cfg in layers]
            layers[window] = cls._window_config(spec, layers[window],
                                                cls.interval_floor(spec, widths))
        if not dense:
            floor = cls.interval_floor(spec, [cfg.width for cfg in layers])
            layers = [replace(cfg, search_bits=search_bits(spec, layer, floor))
                      for layer, cfg in zip(spec.packed_layers, layers)]
        return cls(layers=tuple(layers), **kwargs)

    @staticmethod
    def interval_floor(spec: NetSpec, widths=None) -> int:
        """Cycles per input that the default pipeline takes whatever the activations: the
        input (one feature per cycle), every linear engine's drain (``ceil(out_features /
        width)`` cycles, ``widths`` giving each packed layer's drain width, default 1),
        every global k-WTA's scan (:func:`~.kwta.global_.scan_cycles`, or at width above
        1 :func:`~.kwta.global_wide.wide_scan_cycles` with its ``k`` winners), every other
        conv engine's drain (one position per cycle at one pass), and every local k-WTA's
        winners, ``k`` per position and one cycle each, which the engine after it then
        accumulates at full speed (an upper bound of both, reached when no winner is 0).
        Data-independent, so a choice made against it holds for any input."""
        from .kwta.global_ import scan_cycles
        from .kwta.global_wide import wide_scan_cycles

        packed = spec.packed_layers
        widths = [1] * len(packed) if widths is None else list(widths)
        floor = prod(spec.input.shape)
        width = 1
        for index, layer in enumerate(spec.layers):
            if isinstance(layer, Linear):
                width = widths[packed.index(layer)]
                floor = max(floor, -(-layer.out_features // width))
            elif isinstance(layer, KWTA) and layer.mode == "global":
                size = prod(layer.in_shape)
                floor = max(floor, scan_cycles(size, layer.frac_bits) if width == 1
                            else wide_scan_cycles(size, width, layer.frac_bits,
                                                  _spread(layer.k, size, width)))
            elif isinstance(layer, KWTA):
                floor = max(floor, layer.k * prod(layer.in_shape[1:]))
            elif isinstance(layer, Conv2d) and index > 0:
                floor = max(floor, prod(layer.out_shape[1:]))
        return floor

    @staticmethod
    def _window_config(spec: NetSpec, config: LayerConfig, floor: int) -> LayerConfig:
        """``config`` as a window engine with the fewest lanes that keep it within ``floor``."""
        from .engine.window import window_cycles

        layer = spec.packed_layers[0]
        at = spec.layers.index(layer)
        following = spec.layers[at + 1] if at + 1 < len(spec.layers) else None
        pool = following.size if isinstance(following, MaxPool2d) else 1
        groups = layer.groups
        lanes = groups
        for passes in range(groups, 0, -1):
            lanes = -(-groups // passes)
            if window_cycles(layer, pool, -(-groups // lanes)) <= floor:
                break
        return replace(config, lanes=lanes, engine="window")

    def validate(self, spec: NetSpec):
        """Check that this config fits ``spec``; raise ValueError naming the layer and field."""
        packed = spec.packed_layers
        if len(self.layers) != len(packed):
            raise ValueError(f"HwConfig has {len(self.layers)} layer configs but NetSpec "
                             f"{spec.name!r} has {len(packed)} conv2d/linear layers")
        self._validate_input_width(spec)
        for layer, cfg in zip(packed, self.layers):
            if not isinstance(cfg.lanes, int) or cfg.lanes < 1:
                raise ValueError(f"layer {layer.name!r}: lanes must be a positive integer, "
                                 f"got {cfg.lanes!r}")
            if not isinstance(cfg.offsets, int) or isinstance(cfg.offsets, bool):
                raise ValueError(f"layer {layer.name!r}: offsets must be an integer, "
                                 f"got {cfg.offsets!r}")
            if cfg.engine not in ENGINES:
                raise ValueError(f"layer {layer.name!r}: engine must be one of {list(ENGINES)}, "
                                 f"got {cfg.engine!r}")
            if cfg.engine == "window" and not (isinstance(layer, Conv2d)
                                               and layer.in_shape[0] == 1):
                raise ValueError(f"layer {layer.name!r}: engine 'window' builds only a conv2d "
                                 f"with one input channel (this {layer.kind} has input "
                                 f"{tuple(layer.in_shape)}); use engine 'scatter'")
            if cfg.engine == "gather":
                self._validate_gather(spec, layer, cfg.offsets)
            elif isinstance(layer, Conv2d):
                try:
                    Tiling(layer.kernel, cfg.offsets, tuple(layer.out_shape[1:]), 1)
                except ValueError as error:
                    raise ValueError(f"layer {layer.name!r}: {error}") from None
            elif cfg.offsets != 1:
                raise ValueError(f"layer {layer.name!r}: offsets must be 1 for a linear layer, "
                                 f"got {cfg.offsets!r}")
            if cfg.accumulators not in ACCUMULATORS:
                raise ValueError(f"layer {layer.name!r}: accumulators must be one of "
                                 f"{list(ACCUMULATORS)}, got {cfg.accumulators!r}")
            if cfg.accumulators == "kernel" and isinstance(layer, Conv2d) \
                    and layer is packed[0] and layer.in_shape[0] > 1:
                raise ValueError(f"layer {layer.name!r}: kernel accumulators need position-major "
                                 f"input (a ring), but a first layer with {layer.in_shape[0]} "
                                 f"channels reads channel-major order; use accumulators 'word'")
            if cfg.fifo_depth is not None and (not isinstance(cfg.fifo_depth, int)
                                               or isinstance(cfg.fifo_depth, bool)
                                               or cfg.fifo_depth < 0):
                raise ValueError(f"layer {layer.name!r}: fifo_depth must be a non-negative "
                                 f"integer, got {cfg.fifo_depth!r}")
            self._validate_width(spec, layer, cfg.width)
            if cfg.search_bits not in STEP_BITS or isinstance(cfg.search_bits, bool):
                raise ValueError(f"layer {layer.name!r}: search_bits must be one of "
                                 f"{list(STEP_BITS)}, got {cfg.search_bits!r}")
            need = accumulator_bits(layer)
            if not isinstance(cfg.acc_bits, int) or cfg.acc_bits < need:
                raise ValueError(f"layer {layer.name!r}: acc_bits = {cfg.acc_bits!r} cannot hold "
                                 f"the accumulator bound {layer.accumulator_bound()} "
                                 f"(needs {need} bits)")


    @staticmethod
    def _validate_gather(spec: NetSpec, layer, offsets):
        """A gather engine needs a conv2d right after a local k-WTA, 1 to K*K offsets."""
        if winners_before(spec, layer) is None:
            raise ValueError(f"layer {layer.name!r}: engine 'gather' builds only a conv2d right "
                             f"after a local k-WTA (its input must carry at most k winners a "
                             f"position); use engine 'scatter'")
        kk = layer.kernel ** 2
        if isinstance(offsets, bool) or not isinstance(offsets, int) or not 1 <= offsets <= kk:
            raise ValueError(f"layer {layer.name!r}: offsets of a gather engine (kernel offsets "
                             f"per cycle) must be 1 to K*K = {kk}, got {offsets!r}")

    def _validate_input_width(self, spec: NetSpec):
        """``input_width`` above 1 needs a window engine first: ValueError naming the fix."""
        width = self.input_width
        if width == 1:
            return
        first = spec.layers[0]
        if first is not spec.packed_layers[0] or self.layers[0].engine != "window":
            raise ValueError(f"input_width = {width} needs a first conv2d layer built as a window "
                             f"engine (the only engine that reads several features a beat); "
                             f"layer {first.name!r} is not; use input_width 1")
        w = spec.input.shape[2]
        if w % width:
            divisors = [d for d in range(1, w + 1) if w % d == 0]
            raise ValueError(f"input_width = {width} must divide the input width W = {w} (a "
                             f"beat is part of one row); use one of {divisors}")

    @staticmethod
    def _validate_width(spec: NetSpec, layer, width):
        """``width`` (values per drain beat) of ``layer``: ValueError naming the bad value."""
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"layer {layer.name!r}: width must be a positive integer, "
                             f"got {width!r}")
        if width == 1:
            return
        at = spec.layers.index(layer)
        following = spec.layers[at + 1] if at + 1 < len(spec.layers) else None
        if not (isinstance(layer, Linear) and isinstance(following, KWTA)
                and following.mode == "global"):
            raise ValueError(f"layer {layer.name!r}: width = {width} needs a linear layer "
                             f"followed by a global k-WTA (the only unit that takes several "
                             f"values per beat); use width 1")
        if layer.n % width:
            divisors = [d for d in range(1, layer.n + 1) if layer.n % d == 0]
            raise ValueError(f"layer {layer.name!r}: width = {width} must divide n = {layer.n} "
                             f"(a beat is one accumulator word of one kernel group); use one of "
                             f"{divisors}")
        if width > layer.out_features:
            divisors = [d for d in range(1, layer.out_features + 1) if layer.n % d == 0]
            raise ValueError(f"layer {layer.name!r}: width = {width} exceeds its "
                             f"{layer.out_features} outputs (the wide k-WTA takes at most the "
                             f"whole tensor a beat); use one of {divisors}")


def load_hw_config(path, spec: NetSpec, *, dense: bool = False) -> HwConfig:
    """:meth:`HwConfig.from_dict` of a JSON file; every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hardware config {path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"hardware config {path}: not JSON ({error})") from None
    try:
        return HwConfig.from_dict(data, spec, dense=dense)
    except ValueError as error:
        raise ValueError(f"hardware config {path}: {error}") from None


def save_hw_config(config: HwConfig, path, spec: NetSpec, *, dense: bool = False) -> Path:
    """Write ``config`` (for ``spec``; ``dense``: its dense baseline) as JSON; returns the path."""
    if dense:
        from .generate import unpack_dense
        spec = unpack_dense(spec)
    config.validate(spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(spec), indent=2) + "\n")
    return path
