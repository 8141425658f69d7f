"""Assembly of one packed-layer engine: scatter -> multiply -> accumulators -> drain."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .multiply import PackedMultiply

__all__ = ["PackedEngine"]


class PackedEngine(wiring.Component):
    """Accumulate one input in one buffer while the drain empties the other.

    When the scatter hands over the work item marked ``last``, no further
    item enters until that item has been written and the drain is idle;
    then the buffers swap and the drain starts on the finished input. The
    wait costs a few cycles per input and is what keeps every input's sums
    apart.

    With a ``window`` (:class:`~.ring.RowWindow`, a conv engine with
    position-major input) there is one buffer, a ring of output rows: the
    window gates the scatter's input and tells the drain which rows are
    final, and the drain empties them while the input goes on.

    Subclasses (:class:`ConvEngine`, :class:`LinearEngine`) pick the
    scatter, the tiling, the accumulators (:mod:`.router`) and the drain.

    ``busy`` is high while the engine holds work; ``work`` in the cycles in
    which a work item enters the multipliers (which never stall), the useful
    part of ``busy``: the rest is waiting (for inputs, for the drain, for
    the buffers to swap, or for the unit after it).
    """

    def __init__(self, layer, config, scatter, tiling, accumulators, drain, out_layout,
                 window=None):
        self._layer, self._config = layer, config
        self._scatter, self._tiling, self._drain = scatter, tiling, drain
        self._accumulators, self._window = accumulators, window
        super().__init__({
            "i": In(stream.Signature(scatter.i.payload.shape())),
            "o": Out(stream.Signature(out_layout)),
            "busy": Out(1),
            "work": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer, lanes = self._layer, self._config.lanes
        m.submodules.scatter = scatter = self._scatter
        m.submodules.multiply = multiply = PackedMultiply(layer, lanes, self._tiling)
        m.submodules.accumulators = acc = self._accumulators
        m.submodules.drain = drain = self._drain
        wiring.connect(m, drain.o, wiring.flipped(self.o))
        wiring.connect(m, drain.acc, acc.drain)
        wiring.connect(m, multiply.o, acc.i)
        m.d.comb += self.work.eq(multiply.i.valid)
        if self._window is not None:
            m.submodules.window = window = self._window
            wiring.connect(m, wiring.flipped(self.i), window.i)
            wiring.connect(m, window.o, scatter.i)
            m.d.comb += [
                multiply.i.valid.eq(scatter.o.valid),
                multiply.i.payload.eq(scatter.o.payload),
                scatter.o.ready.eq(1),
                window.last_item.eq(multiply.i.valid & multiply.i.payload.last),
                drain.final.eq(window.final),
                window.drained.eq(drain.drained),
                drain.start.eq(window.start),
                self.busy.eq(window.busy | drain.busy),
            ]
            return m
        wiring.connect(m, wiring.flipped(self.i), scatter.i)

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

        m.d.comb += self.busy.eq(closed | multiply.o.valid | scatter.busy | drain.busy)
        return m
