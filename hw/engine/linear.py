"""Linear engine: each non-zero input touches every packed group once.

The sparse input carries ``index`` (1-D input) or ``(c, y, x)`` (the
flattened output of a convolution); the scatter turns it into the fan-in
index ``f = c*H*W + y*W + x`` and emits one work item per pass, so an input
costs ``ceil(groups / lanes)`` cycles and a layer ``nonzero_inputs`` times
that.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import sparse_layout, tensor_size
from .multiply import item_layout
from .pipeline import PackedEngine

__all__ = ["LinearScatter", "LinearEngine"]


class LinearScatter(wiring.Component):
    """Sparse activations -> one work item per pass, at fan-in index ``f``, position 0.

    Parameters
    ----------
    in_shape : (F,) or (C, H, W)
        Shape of the activation tensor as it arrives (flattened by the layer).
    passes : int
        Passes per activation (``ceil(groups / lanes)``).
    """

    def __init__(self, in_shape: tuple, passes: int):
        if not isinstance(in_shape, tuple) or len(in_shape) not in (1, 3):
            raise TypeError(f"in_shape must be a tuple (F,) or (C, H, W), got {in_shape!r}")
        if not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive integer, got {passes!r}")
        self._shape, self._passes = in_shape, passes
        super().__init__({
            "i": In(stream.Signature(sparse_layout(in_shape))),
            "o": Out(stream.Signature(item_layout(tensor_size(in_shape), passes, 1))),
            "busy": Out(1),
        })

    def _flat(self, act):
        if len(self._shape) == 1:
            return act.index
        _, h, w = self._shape
        return act.c * (h * w) + act.y * w + act.x

    def elaborate(self, platform):
        m = Module()
        act = Signal(self.i.payload.shape())
        q = Signal(range(self._passes))
        busy = Signal()
        at_end = q == self._passes - 1
        m.d.comb += [
            self.busy.eq(busy),
            self.o.valid.eq(busy),
            self.o.payload.value.eq(act.value),
            self.o.payload.f.eq(self._flat(act)),
            self.o.payload.q.eq(q),
            self.o.payload.p.eq(0),
            self.o.payload.last.eq(act.last & at_end),
            self.i.ready.eq(~busy | (self.o.ready & at_end)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += q.eq(q + 1)
            with m.If(at_end):
                m.d.sync += [q.eq(0), busy.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [act.eq(self.i.payload), busy.eq(1), q.eq(0)]
        return m


class LinearEngine(PackedEngine):
    """A linear layer as a sparse-in, dense-out engine.

    Parameters
    ----------
    layer : Linear
        The NetSpec layer.
    config : LayerConfig
        Lanes and accumulator width.
    in_shape : tuple
        Shape of the arriving activations: ``(F,)``, or ``(C, H, W)`` after a convolution.

    Ports
    -----
    i : sparse activations of ``in_shape``.
    o : dense int8 outputs in index order (int32 logits when ``layer.requant`` is None).
    busy : high while any input is being accumulated or drained.
    """

    def __init__(self, layer, config, in_shape: tuple | None = None):
        in_shape = tuple(layer.in_shape) if in_shape is None else tuple(in_shape)
        if tensor_size(in_shape) != layer.in_features:
            raise ValueError(f"in_shape {in_shape!r} has {tensor_size(in_shape)} elements; "
                             f"layer {layer.name!r} takes {layer.in_features}")
        passes = config.passes(layer.groups)
        super().__init__(layer, config, LinearScatter(in_shape, passes), out_hw=(1, 1), pool=1)
