"""Convolution engine: each non-zero input is scattered to the outputs it reaches.

Input ``(c, y, x)`` contributes to output ``(y - ky, x - kx)`` through fan-in
index ``f = c*K*K + ky*K + kx``, for every kernel offset that lands inside
the output. The scatter walks only those offsets (``ky`` from
``max(0, y - Ho + 1)`` to ``min(K - 1, y)``, likewise ``kx``), one work item
per offset and pass, so an input costs exactly the useful products the
golden model counts and an engine's cycles follow the activation density.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import sparse_layout
from .multiply import item_layout
from .pipeline import PackedEngine

__all__ = ["ConvScatter", "ConvEngine"]


class ConvScatter(wiring.Component):
    """Sparse ``(value, c, y, x)`` stream -> one work item per valid kernel offset and pass.

    Parameters
    ----------
    in_shape : (C, H, W)
        Input tensor shape.
    kernel : int
        Square kernel size ``K`` (stride 1, valid padding).
    passes : int
        Passes per offset (``ceil(groups / lanes)``).
    """

    def __init__(self, in_shape: tuple, kernel: int, passes: int):
        if not isinstance(in_shape, tuple) or len(in_shape) != 3:
            raise TypeError(f"in_shape must be a tuple (C, H, W), got {in_shape!r}")
        if not isinstance(kernel, int) or not 1 <= kernel <= min(in_shape[1:]):
            raise ValueError(f"kernel must be an integer in [1, {min(in_shape[1:])}], "
                             f"got {kernel!r}")
        if not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive integer, got {passes!r}")
        self._shape, self._k, self._passes = in_shape, kernel, passes
        c, h, w = in_shape
        self.out_hw = (h - kernel + 1, w - kernel + 1)
        positions = self.out_hw[0] * self.out_hw[1]
        super().__init__({
            "i": In(stream.Signature(sparse_layout(in_shape))),
            "o": Out(stream.Signature(item_layout(c * kernel * kernel, passes, positions))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        k, (ho, wo) = self._k, self.out_hw
        # Range of kernel offsets whose output lies inside the ho x wo output.
        lo = lambda coord, extent: Mux(coord >= extent, coord - (extent - 1), 0)
        hi = lambda coord: Mux(coord < k - 1, coord, k - 1)

        act = Signal(self.i.payload.shape())
        ky, kx = Signal(range(k)), Signal(range(k))
        q = Signal(range(self._passes))
        busy = Signal()
        at_end = (q == self._passes - 1) & (kx == hi(act.x)) & (ky == hi(act.y))

        item = self.o.payload
        m.d.comb += [
            self.busy.eq(busy),
            self.o.valid.eq(busy),
            item.value.eq(act.value),
            item.f.eq(act.c * (k * k) + ky * k + kx),
            item.q.eq(q),
            item.p.eq((act.y - ky) * wo + (act.x - kx)),
            item.last.eq(act.last & at_end),
            self.i.ready.eq(~busy | (self.o.ready & at_end)),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(q != self._passes - 1):
                m.d.sync += q.eq(q + 1)
            with m.Elif(kx != hi(act.x)):
                m.d.sync += [q.eq(0), kx.eq(kx + 1)]
            with m.Elif(ky != hi(act.y)):
                m.d.sync += [q.eq(0), kx.eq(lo(act.x, wo)), ky.eq(ky + 1)]
            with m.Else():
                m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [act.eq(self.i.payload), busy.eq(1), q.eq(0),
                         ky.eq(lo(self.i.payload.y, ho)), kx.eq(lo(self.i.payload.x, wo))]
        return m


class ConvEngine(PackedEngine):
    """A conv2d layer (with an optional fused max-pool) as a sparse-in, dense-out engine.

    Parameters
    ----------
    layer : Conv2d
        The NetSpec layer.
    config : LayerConfig
        Lanes and accumulator width.
    pool : int
        Max-pool window fused into the drain (1: none).

    Ports
    -----
    i : sparse ``(value, c, y, x)`` activations of ``layer.in_shape``.
    o : dense int8 outputs in position-major order of the (pooled) output
        (int32 ``acc + bias`` when ``layer.requant`` is None).
    busy : high while any input is being accumulated or drained.
    """

    def __init__(self, layer, config, pool: int = 1):
        passes = config.passes(layer.groups)
        super().__init__(layer, config, ConvScatter(tuple(layer.in_shape), layer.kernel, passes),
                         out_hw=tuple(layer.out_shape[1:]), pool=pool)
