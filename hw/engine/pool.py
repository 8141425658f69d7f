"""Max-pool of whole positions: a running max per channel over the pool window.

The drain reads a pool window's positions back to back (and, with fewer
lanes than groups, each position as ``passes`` slices of the channels), so
pooling needs no line buffer: a register per channel keeps the running max
of the window, and the last beat of the window completes the output vector.
Requantisation is monotonic, so the max of requantised values is the
requantised max (docs/netspec.md: conv -> requant -> pool).
"""

from amaranth import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_vector_layout

__all__ = ["VectorPool"]


class VectorPool(wiring.Component):
    """Assemble one output position from ``window x passes`` slice beats, keeping the max.

    Parameters
    ----------
    channels : int
        Channels of the output vector.
    width : int
        Channels per input beat; ``passes * width >= channels``.
    passes : int
        Slices per position: beat ``q`` (innermost) carries channels ``q*width ..``.
    window : int
        Positions per output (``size * size``; 1: no pooling).

    Ports
    -----
    i : ``dense_vector_layout(width)`` slices: for each output, each window
        position, each slice.
    o : ``dense_vector_layout(channels)``, one beat per output; ``last`` of
        the output's final input beat.
    """

    def __init__(self, channels: int, width: int, passes: int, window: int):
        for name, value in (("channels", channels), ("width", width), ("passes", passes),
                            ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if passes * width < channels:
            raise ValueError(f"passes * width = {passes * width} cannot hold {channels} channels")
        self._channels, self._width, self._passes, self._window = channels, width, passes, window
        super().__init__({"i": In(stream.Signature(dense_vector_layout(width))),
                          "o": Out(stream.Signature(dense_vector_layout(channels)))})

    def elaborate(self, platform):
        m = Module()
        width, passes = self._width, self._passes
        w, q = Signal(range(self._window)), Signal(range(passes))
        best = Signal(data.ArrayLayout(data.ArrayLayout(signed(8), width), passes))
        slice_layout = data.ArrayLayout(signed(8), width)
        current = slice_layout(Array(best[p].as_value() for p in range(passes))[q])
        merged = Signal(data.ArrayLayout(signed(8), width))
        for e in range(width):
            value, kept = self.i.payload.values[e], current[e]
            m.d.comb += merged[e].eq(Mux((w == 0) | (value > kept), value, kept))
        final = (w == self._window - 1) & (q == passes - 1)
        m.d.comb += self.i.ready.eq(~final | ~self.o.valid | self.o.ready)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += q.eq(Mux(q == passes - 1, 0, q + 1))
            for p in range(passes):
                with m.If(q == p):
                    m.d.sync += best[p].eq(merged)
            with m.If(q == passes - 1):
                m.d.sync += w.eq(Mux(w == self._window - 1, 0, w + 1))
            with m.If(final):
                done = Cat(*(best[p] for p in range(passes - 1)), merged)
                m.d.sync += [self.o.valid.eq(1), self.o.payload.values.eq(done),
                             self.o.payload.last.eq(self.i.payload.last)]
        return m
