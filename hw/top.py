"""The network top: one engine per packed layer, all running at once on successive inputs.

    features (dense, flat) -> Sparsifier -> engine 1 -> k-WTA | Sparsifier -> engine 2
        -> ... -> last engine (int32 logits) -> Argmax -> result

A max-pool that directly follows a convolution is fused into that engine's
drain; a k-WTA (or, without one, a Sparsifier) turns an engine's dense
output into the next engine's sparse input. An engine whose requantisation
keeps fraction bits (NetSpec version 2) emits ``signed(8 + frac_bits)``
values, and its k-WTA ranks them and rounds the winners to int8, so every
sparse stream between engines is int8. A conv engine's output is one
vector beat per position (all channels), a linear engine's one value per
beat. Streams join the stages, with a
small FIFO after each stage so neighbours rarely wait for each other.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.netspec import KWTA, Conv2d, Linear, MaxPool2d, NetSpec
from .argmax import Argmax, result_layout
from .config import HwConfig
from .engine import ConvEngine, GatherConvEngine, LinearEngine, WindowConvEngine
from .kwta.global_ import GlobalKWTA
from .kwta.global_wide import GlobalWideKWTA
from .kwta.local import LocalKWTA
from .layouts import dense_layout, dense_vector_layout
from .sparsify import Sparsifier

__all__ = ["NotBuiltInHardware", "Stage", "plan", "position_major_input", "engine_for", "unit_after", "Network"]


class NotBuiltInHardware(ValueError):
    """A valid NetSpec the golden model runs but the generator does not build; the message
    names the layer and why (a conv2d last layer, a global k-WTA on a (C, H, W) tensor)."""


class Stage:
    """One engine of the pipeline: its packed layer, fused pool, and what follows it.

    ``kwta`` is the NetSpec k-WTA layer after the engine (or None);
    ``in_shape`` is the shape of the activations the engine receives and
    ``out_shape`` the shape it emits (after the pool); ``winners`` is the ``k`` of a
    local k-WTA right before the engine (the most beats a position of its input
    carries), None when there is none.
    """

    def __init__(self, layer, pool, kwta, in_shape, winners=None):
        self.layer, self.pool, self.kwta, self.in_shape = layer, pool, kwta, in_shape
        self.winners = winners
        if isinstance(layer, Conv2d):
            c, h, w = layer.out_shape
            self.out_shape = (c, h // pool, w // pool)
        else:
            self.out_shape = tuple(layer.out_shape)


def plan(spec: NetSpec) -> list:
    """Group the NetSpec's layers into engine stages; ValueError names an unsupported order."""
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    stages, layers, i = [], list(spec.layers), 0
    shape = tuple(spec.input.shape)
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, (Conv2d, Linear)):
            raise ValueError(f"layer {layer.name!r} ({layer.kind}) must follow a conv2d or "
                             f"linear layer (or its pool) to be built in hardware")
        i += 1
        pool = 1
        if i < len(layers) and isinstance(layers[i], MaxPool2d):
            if not isinstance(layer, Conv2d):
                raise ValueError(f"layer {layers[i].name!r}: a max-pool is fused into the "
                                 f"conv2d before it; it cannot follow {layer.kind}")
            pool = layers[i].size
            i += 1
        kwta = None
        if i < len(layers) and isinstance(layers[i], KWTA):
            kwta = layers[i]
            i += 1
        # NetSpec validation guarantees that fraction bits reach only this stage's k-WTA.
        before = stages[-1].kwta if stages else None
        winners = before.k if isinstance(layer, Conv2d) and before is not None \
            and before.mode == "local" else None
        stage = Stage(layer, pool, kwta, shape, winners)
        if kwta is not None and kwta.mode == "global" and len(stage.out_shape) == 3:
            raise NotBuiltInHardware(f"layer {kwta.name!r}: a global k-WTA on a (C, H, W) "
                                     f"tensor is not built (convolutions drain position-major, "
                                     f"global k-WTA reads flat order)")
        stages.append(stage)
        shape = stage.out_shape
    if isinstance(stages[-1].layer, Conv2d):
        raise NotBuiltInHardware(f"layer {stages[-1].layer.name!r}: the last layer must be linear "
                                 f"in hardware (its int32 logits go to the argmax one per "
                                 f"cycle); a conv2d-last NetSpec runs in the golden model only "
                                 f"(`cosparse golden`)")
    return stages


def position_major_input(stage, index: int) -> bool:
    """Whether the conv engine of ``stage`` (packed layer ``index``) gets position-major input.

    Later layers read a conv engine's drain through a k-WTA or Sparsifier,
    one position at a time in raster order, and a one-channel input's flat
    order is raster order; only a first layer with more than one channel
    reads NetSpec flat (channel-major) order. Position-major input lets the
    engine keep a ring of output rows (hw/engine/ring.py); channel-major
    input keeps the whole map.
    """
    return isinstance(stage.layer, Conv2d) and (index > 0 or stage.in_shape[0] == 1)


def engine_for(stage, config, index: int, input_width: int = 1):
    """The engine of ``stage`` (packed layer ``index`` of :func:`plan`) with ``config``.

    Shared by :class:`Network`, sim/bench_engine.py and bench/, so all build
    the same engine. ``config.engine == "window"`` builds a conv layer as a
    :class:`~.engine.window.WindowConvEngine` (one-channel input, raster order);
    the first one reads the network's features directly, ``input_width`` a
    beat, when that is above 1 (:class:`~.config.HwConfig` ``input_width``).
    ``"gather"`` builds a :class:`~.engine.gather.GatherConvEngine` on the
    ``stage.winners`` beats a position of the local k-WTA before it.
    """
    layer = stage.layer
    if isinstance(layer, Conv2d) and config.engine == "gather":
        if stage.winners is None:
            raise ValueError(f"layer {layer.name!r}: engine 'gather' needs a local k-WTA "
                             f"right before the layer; use engine 'scatter'")
        return GatherConvEngine(layer, config, k=stage.winners, pool=stage.pool)
    if isinstance(layer, Conv2d) and config.engine == "window":
        beat = input_width if index == 0 and input_width > 1 else None
        return WindowConvEngine(layer, config, pool=stage.pool, beat=beat)
    if isinstance(layer, Conv2d):
        return ConvEngine(layer, config, pool=stage.pool,
                          position_major=position_major_input(stage, index))
    return LinearEngine(layer, config, in_shape=stage.in_shape)


def unit_after(stage, *, skip_zeros: bool = True, width: int = 1, search_bits: int = 2):
    """The unit that turns a non-final engine's dense output into the next engine's input.

    The stage's k-WTA (local or global) when it has one, else a
    :class:`~cosparse.hw.sparsify.Sparsifier`; a conv engine emits one position
    per beat (hw/layouts.py, dense vector). Shared by :class:`Network` and the
    unit-by-unit replay of sim/bench_engine.py, so both build the same thing.
    ``width`` is the engine's drain width (config ``width``): above 1 the global
    k-WTA takes that many values per beat (:class:`~.kwta.global_wide.GlobalWideKWTA`);
    ``search_bits`` (config ``search_bits``) is a local k-WTA's threshold bits per step.
    """
    out_shape = stage.out_shape
    if stage.kwta is None:
        vector = len(out_shape) == 3
        return Sparsifier(out_shape, skip_zeros=skip_zeros,
                          order="position_major" if vector else "flat", vector=vector)
    frac = stage.kwta.frac_bits
    if stage.kwta.mode == "local":
        return LocalKWTA(out_shape, stage.kwta.k, skip_zeros=skip_zeros, frac_bits=frac,
                         step_bits=search_bits)
    if width > 1:
        return GlobalWideKWTA(out_shape, stage.kwta.k, width, skip_zeros=skip_zeros,
                              frac_bits=frac)
    return GlobalKWTA(out_shape, stage.kwta.k, skip_zeros=skip_zeros, frac_bits=frac)


class Network(wiring.Component):
    """A whole NetSpec as a streaming accelerator.

    Parameters
    ----------
    spec : NetSpec
        The network (already unpacked to ``n = 1`` for the dense baseline).
    config : HwConfig
        Per-layer parallelism; validated against ``spec``.
    skip_zeros : bool
        False builds the dense baseline: Sparsifiers and k-WTAs pass every
        value, zeros included, so every engine multiplies every input.

    Ports
    -----
    i : ``stream.Signature(dense_layout())``
        Input features, one int8 per beat in NetSpec flat ``(c, y, x)``
        order, ``last`` on the final one of each input; with the config's
        ``input_width`` above 1, ``dense_vector_layout(input_width)``: that
        many features per beat, in the same order.
    o : ``stream.Signature(result_layout(classes))``
        One beat per input: ``logits`` (int32 array, class order) and ``cls``.
    busy : ``Out(engines)``
        Bit ``e`` is high in every cycle engine ``e`` holds work.
    work : ``Out(engines)``
        Bit ``e`` is high in every cycle engine ``e`` feeds its multipliers (useful
        work); ``busy`` without ``work`` is waiting.
    """

    def __init__(self, spec: NetSpec, config: HwConfig, *, skip_zeros: bool = True):
        self.stages = plan(spec)
        if not isinstance(config, HwConfig):
            raise TypeError(f"config must be an HwConfig, got {type(config).__name__}")
        config.validate(spec)
        if not skip_zeros and any(cfg.engine == "gather" for cfg in config.layers):
            raise ValueError("engine 'gather' reads at most k winners a position, but the "
                             "dense baseline (skip_zeros=False) sends every channel; use "
                             "engine 'scatter' there")
        self._spec, self._config, self._skip = spec, config, bool(skip_zeros)
        self.input_width = config.input_width
        source = dense_layout() if self.input_width == 1 else \
            dense_vector_layout(self.input_width)
        super().__init__({
            "i": In(stream.Signature(source)),
            "o": Out(stream.Signature(result_layout(len(spec.classes)))),
            "busy": Out(len(self.stages)),
            "work": Out(len(self.stages)),
        })

    def _link(self, m, source, sink, name, depth):
        """Stream ``source`` into ``sink`` through a FIFO of ``depth`` (0: directly)."""
        if depth == 0:
            wiring.connect(m, source, sink)
            return
        fifo = SyncFIFOBuffered(width=len(source.payload.as_value()), depth=depth)
        m.submodules[f"fifo_{name}"] = fifo
        m.d.comb += [
            fifo.w_stream.valid.eq(source.valid),
            fifo.w_stream.payload.eq(source.payload),
            source.ready.eq(fifo.w_stream.ready),
            sink.valid.eq(fifo.r_stream.valid),
            sink.payload.eq(fifo.r_stream.payload),
            fifo.r_stream.ready.eq(sink.ready),
        ]

    def elaborate(self, platform):
        m = Module()
        skip = self._skip
        # A window engine first takes every feature, zeros included: it walks every position
        # anyway, and fed only the non-zeros it would fill the skipped positions after the
        # Sparsifier had already spent a cycle on each (H*W + zeros cycles, not H*W).
        # With several features a beat the window engine reads them as they come.
        window_first = self._config.layers[0].engine == "window"
        if self.input_width > 1:
            source = wiring.flipped(self.i)
        else:
            m.submodules.sparsify_in = head = Sparsifier(tuple(self._spec.input.shape),
                                                         skip_zeros=skip and not window_first,
                                                         order="flat")
            wiring.connect(m, wiring.flipped(self.i), head.i)
            source = head.o
        for index, (stage, cfg) in enumerate(zip(self.stages, self._config.layers)):
            layer = stage.layer
            engine = engine_for(stage, cfg, index, self.input_width)
            m.submodules[f"engine_{layer.name}"] = engine
            m.d.comb += [self.busy[index].eq(engine.busy), self.work[index].eq(engine.work)]
            self._link(m, source, engine.i, f"{layer.name}_in", self._config.fifo_depth_of(index))
            if index == len(self.stages) - 1:
                m.submodules.argmax = argmax = Argmax(len(self._spec.classes))
                wiring.connect(m, engine.o, argmax.i)
                wiring.connect(m, argmax.o, wiring.flipped(self.o))
                break
            after = unit_after(stage, skip_zeros=skip, width=cfg.width,
                               search_bits=cfg.search_bits)
            m.submodules[f"sparse_{layer.name}"] = after
            wiring.connect(m, engine.o, after.i)
            source = after.o
        return m
