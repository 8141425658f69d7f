"""Logits collector and classifier at the end of the network."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .layouts import dense_layout
from .skid import SkidBuffer

__all__ = ["result_layout", "Argmax"]


def result_layout(classes: int) -> data.StructLayout:
    """One result: every int32 logit (class order) and the predicted class."""
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    return data.StructLayout({"logits": data.ArrayLayout(signed(32), classes),
                              "cls": unsigned(max(1, ceil_log2(classes)))})


class Argmax(wiring.Component):
    """Collect ``classes`` int32 logits and emit them with their argmax as one beat.

    A running maximum that is replaced only by a strictly larger logit keeps
    the lowest index among equals, the tie rule of docs/netspec.md. The
    ``last`` flag of the input is not needed to find the end (the count is
    fixed) but closes the input, so a mismatch would show in tests as a
    misaligned result.

    Ports
    -----
    i : dense int32 logits in class order.
    o : one :func:`result_layout` beat per input.
    """

    def __init__(self, classes: int):
        self._classes = classes
        super().__init__({"i": In(stream.Signature(dense_layout(signed(32)))),
                          "o": Out(stream.Signature(result_layout(classes)))})

    def elaborate(self, platform):
        m = Module()
        # The logits arrive through a register slice: the 32-bit compare below then starts
        # from flip-flops, not from the last engine's drain arithmetic, and i.ready is one.
        m.submodules.slice = entry = SkidBuffer(dense_layout(signed(32)))
        wiring.connect(m, wiring.flipped(self.i), entry.i)
        index = Signal(range(self._classes))
        best = Signal(signed(32))
        value = entry.o.payload.value
        m.d.comb += entry.o.ready.eq(~self.o.valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(entry.o.valid & entry.o.ready):
            m.d.sync += self.o.payload.logits[index].eq(value)
            with m.If((index == 0) | (value > best)):
                m.d.sync += [best.eq(value), self.o.payload.cls.eq(index)]
            m.d.sync += index.eq(index + 1)
            with m.If(index == self._classes - 1):
                m.d.sync += [index.eq(0), self.o.valid.eq(1)]
        return m
