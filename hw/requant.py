"""Requantiser: per-channel fixed-point scaling of accumulators to int8.

docs/netspec.md defines the arithmetic exactly::

    r = (a * m + (s > 0 ? 2**(s-1) : 0)) >> s      # arithmetic shift
    y = min(max(r, out_min), out_max)

with ``m`` (unsigned, 16 bits) and ``s`` (0..62) chosen per output channel.
The unit is a four-stage pipeline so that each stage holds one operation a
DSP block or a fabric adder does comfortably in one cycle: operand
registers, the multiply, the rounding add, then the variable shift and the
saturation.
"""

import numpy as np
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .layouts import coordinate_bits, dense_layout

__all__ = ["requant_input_layout", "Requantiser"]

MULTIPLIER_BITS = 16
MAX_SHIFT = 62


def requant_input_layout(channels: int, acc_bits: int) -> data.StructLayout:
    """One accumulator value ``a`` of output ``channel``, and ``last``."""
    return data.StructLayout({"a": signed(acc_bits), "channel": unsigned(coordinate_bits(channels)),
                              "last": unsigned(1)})


def _int_array(name, values, channels, low, high):
    array = np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D array of integers, got {values!r}")
    if len(array) != channels:
        raise ValueError(f"{name} must have one entry per channel ({channels}), got {len(array)}")
    bad = (array < low) | (array > high)
    if bad.any():
        raise ValueError(f"{name}[{int(np.argmax(bad))}] = {int(array[bad][0])} is outside "
                         f"[{low}, {high}]")
    return [int(v) for v in array]


class Requantiser(wiring.Component):
    """Scale, round half up and saturate a stream of accumulators, one per cycle.

    The multiplier and shift of every channel live in a small ROM read
    combinationally by the input's ``channel``, so a drain that walks
    channels in any order needs no side band. The product ``a * m`` is a
    signed ``acc_bits`` by unsigned 16-bit multiply (17-bit signed operand),
    which fits one DSP48/DSP58 for ``acc_bits <= 27`` and two beyond. The
    rounding constant and the shifter are only as wide as the largest shift
    in the ROM needs.

    Every stage advances only when the stage after it is empty or is being
    emptied in the same cycle, so bubbles collapse and nothing is lost when
    ``o.ready`` drops; ``i.ready`` is combinational in ``o.ready``.

    Parameters
    ----------
    channels : int
        Number of channels (ROM depth), >= 1.
    acc_bits : int
        Width of the signed accumulator ``a``, 2..32.
    multipliers, shifts : array of int
        Per-channel ``m`` (``0 <= m < 2**16``) and ``s`` (``0 <= s <= 62``),
        e.g. a NetSpec ``Requant``'s ``multiplier`` and ``shift``.
    out_min, out_max : int
        Saturation bounds, ``-128 <= out_min <= out_max <= 127``.

    Ports
    -----
    i : ``In(stream.Signature(requant_input_layout(channels, acc_bits)))``
        ``a`` (signed(acc_bits)), ``channel`` (unsigned, ``coordinate_bits(channels)``), ``last``.
    o : ``Out(stream.Signature(dense_layout()))``
        ``value`` (signed(8)) and ``last`` (passed through), in input order,
        four cycles after the input when never stalled.
    """

    def __init__(self, channels: int, acc_bits: int, multipliers, shifts,
                 out_min: int = -128, out_max: int = 127):
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if not isinstance(acc_bits, int) or isinstance(acc_bits, bool) or not 2 <= acc_bits <= 32:
            raise ValueError(f"acc_bits must be an integer in [2, 32], got {acc_bits!r}")
        for name, bound in (("out_min", out_min), ("out_max", out_max)):
            if not isinstance(bound, (int, np.integer)) or not -128 <= bound <= 127:
                raise ValueError(f"{name} must be an integer in [-128, 127], got {bound!r}")
        if out_min > out_max:
            raise ValueError(f"out_min ({out_min}) must not exceed out_max ({out_max})")
        self._channels = channels
        self._acc_bits = acc_bits
        self._multipliers = _int_array("multipliers", multipliers, channels, 0, 2**MULTIPLIER_BITS - 1)
        self._shifts = _int_array("shifts", shifts, channels, 0, MAX_SHIFT)
        self._out_min, self._out_max = int(out_min), int(out_max)
        super().__init__({"i": In(stream.Signature(requant_input_layout(channels, acc_bits))),
                          "o": Out(stream.Signature(dense_layout()))})

    def elaborate(self, platform):
        m = Module()
        max_shift = max(self._shifts)
        product_bits = self._acc_bits + MULTIPLIER_BITS
        # Wide enough for a * m and for the rounding constant 2**(s-1), plus a carry.
        sum_bits = max(product_bits, max_shift) + 1
        coeff = data.StructLayout({"m": unsigned(MULTIPLIER_BITS),
                                   "s": unsigned(max(1, ceil_log2(max_shift + 1)))})
        m.submodules.rom = rom = Memory(
            shape=coeff, depth=self._channels,
            init=[{"m": mv, "s": sv} for mv, sv in zip(self._multipliers, self._shifts)])
        lookup = rom.read_port(domain="comb")
        m.d.comb += lookup.addr.eq(self.i.payload.channel)

        # Stage registers: valid bits, and what each stage hands on.
        v1, v2, v3 = Signal(), Signal(), Signal()
        a1, c1 = Signal(signed(self._acc_bits)), Signal(coeff)
        p2, s2 = Signal(signed(product_bits)), Signal.like(c1.s)
        q3, s3 = Signal(signed(sum_bits)), Signal.like(c1.s)
        l1, l2, l3 = Signal(), Signal(), Signal()

        take4 = ~self.o.valid | self.o.ready
        take3 = ~v3 | take4
        take2 = ~v2 | take3
        take1 = ~v1 | take2
        m.d.comb += self.i.ready.eq(take1)

        with m.If(take1):
            m.d.sync += [v1.eq(self.i.valid), a1.eq(self.i.payload.a), c1.eq(lookup.data),
                         l1.eq(self.i.payload.last)]
        with m.If(take2):
            m.d.sync += [v2.eq(v1), p2.eq(a1 * c1.m), s2.eq(c1.s), l2.eq(l1)]
        with m.If(take3):
            half = Signal(unsigned(sum_bits - 1))
            m.d.comb += half.eq((1 << s2) >> 1)
            m.d.sync += [v3.eq(v2), q3.eq(p2 + half), s3.eq(s2), l3.eq(l2)]
        with m.If(take4):
            r = Signal(signed(sum_bits))
            m.d.comb += r.eq(q3 >> s3)
            with m.If(r < self._out_min):
                m.d.sync += self.o.payload.value.eq(self._out_min)
            with m.Elif(r > self._out_max):
                m.d.sync += self.o.payload.value.eq(self._out_max)
            with m.Else():
                m.d.sync += self.o.payload.value.eq(r)
            m.d.sync += [self.o.valid.eq(v3), self.o.payload.last.eq(l3)]
        return m
