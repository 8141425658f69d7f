"""Assembly of one packed-layer engine: scatter -> multiply -> accumulators -> drain."""

from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_layout
from .drain import Drain
from .multiply import PackedMultiply
from .router import Accumulators

__all__ = ["PackedEngine"]


class PackedEngine(wiring.Component):
    """Accumulate one input in one buffer while the drain empties the other.

    When the scatter hands over the work item marked ``last``, no further
    item enters until that item has been written and the drain is idle;
    then the buffers swap and the drain starts on the finished input. The
    wait costs a few cycles per input and is what keeps every input's sums
    apart.

    Subclasses (:class:`ConvEngine`, :class:`LinearEngine`) pick the scatter.
    """

    def __init__(self, layer, config, scatter, *, out_hw: tuple, pool: int):
        if not isinstance(pool, int) or pool < 1 or out_hw[0] % pool or out_hw[1] % pool:
            raise ValueError(f"layer {layer.name!r}: pool must be a positive integer dividing "
                             f"the output {out_hw}, got {pool!r}")
        if layer.requant is None and pool != 1:
            raise ValueError(f"layer {layer.name!r}: pool must be 1 without requant")
        self._layer, self._config, self._scatter = layer, config, scatter
        self._out_hw, self._pool = out_hw, pool
        self.passes = config.passes(layer.groups)
        value = signed(8) if layer.requant is not None else signed(32)
        super().__init__({
            "i": In(stream.Signature(scatter.i.payload.shape())),
            "o": Out(stream.Signature(dense_layout(value))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer, lanes = self._layer, self._config.lanes
        positions = self._out_hw[0] * self._out_hw[1]
        m.submodules.scatter = scatter = self._scatter
        m.submodules.multiply = multiply = PackedMultiply(layer, lanes, positions)
        m.submodules.accumulators = acc = Accumulators(layer.n, lanes, self.passes, positions,
                                                       self._config.acc_bits)
        m.submodules.drain = drain = Drain(layer, lanes, self.passes, self._out_hw, self._pool,
                                           self._config.acc_bits)
        wiring.connect(m, wiring.flipped(self.i), scatter.i)
        wiring.connect(m, drain.o, wiring.flipped(self.o))
        wiring.connect(m, drain.acc, acc.drain)
        wiring.connect(m, multiply.o, acc.i)

        # Gate between the scatter and the multiplier: closed from the last item of an input
        # until the buffers have swapped.
        closed = Signal()    # the last item has entered the pipeline
        finished = Signal()  # ... and has been written
        m.d.comb += [
            multiply.i.valid.eq(scatter.o.valid & ~closed),
            multiply.i.payload.eq(scatter.o.payload),
            scatter.o.ready.eq(~closed),
        ]
        with m.If(multiply.i.valid & scatter.o.payload.last):
            m.d.sync += closed.eq(1)
        with m.If(acc.done):
            m.d.sync += finished.eq(1)
        swap = (finished | acc.done) & ~drain.busy
        m.d.comb += drain.start.eq(swap)
        with m.If(swap):
            m.d.sync += [acc.sel.eq(~acc.sel), closed.eq(0), finished.eq(0)]

        in_flight = Signal()
        m.d.comb += in_flight.eq(closed | multiply.o.valid | scatter.busy)
        m.d.comb += self.busy.eq(in_flight | drain.busy)
        return m
