"""A stream register slice (skid buffer): registers on both valid/ready paths, no bubble.

Between two units, ``o.valid``/``o.payload`` and ``i.ready`` are flip-flops,
so neither the payload logic nor the ready logic of one unit reaches into
the other's: the paths that limit the clock stop here. A second register
(the skid) catches the beat that arrives in the cycle ``o.ready`` drops, so
``i.ready`` can be a register yet nothing is lost; with ``o.ready`` held
high a beat passes every cycle (one cycle of latency).
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Pass a stream through two registers, ``i.ready`` registered, full throughput.

    Parameters
    ----------
    layout : shape-castable
        The payload.

    Ports
    -----
    i : ``In(stream.Signature(layout))``
    o : ``Out(stream.Signature(layout))``
        The same beats, in order, one cycle later when never stalled.
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._layout)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
