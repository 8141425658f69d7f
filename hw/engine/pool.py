"""Max-pool of whole positions: a running max per channel over the pool window.

The drain reads a pool window's positions back to back (and, with fewer
lanes than groups, each position as ``passes`` slices of the channels), so
pooling needs no line buffer: a register per channel keeps the running max
of the window, and the last beat of the window completes the output vector.
Requantisation is monotonic, so the max of requantised values is the
requantised max (docs/netspec.md: conv -> requant -> pool). Values with
fraction bits (a requantisation with ``frac_bits = f`` feeding a k-WTA) are
pooled as they are, ``signed(8 + f)``: ``f`` more bits per running-max
register and comparator.
"""

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import check_frac_bits, dense_vector_layout, value_shape

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
    frac_bits : int
        Fraction bits of the values, 0..8: they are ``signed(8 + frac_bits)``.

    Ports
    -----
    i : ``dense_vector_layout(width, value_shape(frac_bits))`` slices: for
        each output, each window position, each slice.
    o : ``dense_vector_layout(channels, value_shape(frac_bits))``, one beat
        per output; ``last`` of the output's final input beat.
    """

    def __init__(self, channels: int, width: int, passes: int, window: int,
                 frac_bits: int = 0):
        for name, value in (("channels", channels), ("width", width), ("passes", passes),
                            ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if passes * width < channels:
            raise ValueError(f"passes * width = {passes * width} cannot hold {channels} channels")
        self._channels, self._width, self._passes, self._window = channels, width, passes, window
        self._value = value_shape(check_frac_bits(frac_bits))
        super().__init__({"i": In(stream.Signature(dense_vector_layout(width, self._value))),
                          "o": Out(stream.Signature(dense_vector_layout(channels, self._value)))})

    def elaborate(self, platform):
        m = Module()
        width, passes = self._width, self._passes
        w, q = Signal(range(self._window)), Signal(range(passes))
        slice_layout = data.ArrayLayout(self._value, width)
        best = Signal(data.ArrayLayout(slice_layout, passes))
        current = slice_layout(Array(best[p].as_value() for p in range(passes))[q])
        merged = Signal(slice_layout)
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
