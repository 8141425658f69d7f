"""Requantiser: per-channel fixed-point scaling of accumulators to int8.

docs/netspec.md defines the arithmetic exactly::

    r = (a * m + (s > 0 ? 2**(s-1) : 0)) >> s      # arithmetic shift
    y = min(max(r, out_min * 2**f), out_max * 2**f)

with ``f = frac_bits`` (0 by default): with ``f > 0`` the output is an int8
value with ``f`` extra fraction bits, a signed ``8 + f`` bit integer, which
only a max-pool and then a k-WTA consume (the k-WTA ranks on the finer
values and rounds its winners to int8). The arithmetic is the same; only
the saturation bounds and the output register grow by ``f`` bits.

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

from .layouts import check_frac_bits, coordinate_bits, dense_layout, dense_vector_layout, \
    value_shape

__all__ = ["requant_input_layout", "vector_requant_input_layout", "Requantiser",
           "VectorRequantiser"]

MULTIPLIER_BITS = 16
MAX_SHIFT = 62


def requant_input_layout(channels: int, acc_bits: int) -> data.StructLayout:
    """One accumulator value ``a`` of output ``channel``, and ``last``."""
    return data.StructLayout({"a": signed(acc_bits), "channel": unsigned(coordinate_bits(channels)),
                              "last": unsigned(1)})


def vector_requant_input_layout(width: int, slices: int, acc_bits: int) -> data.StructLayout:
    """``width`` accumulator values ``a`` of channels ``slice*width ..``, and ``last``."""
    return data.StructLayout({"a": data.ArrayLayout(signed(acc_bits), width),
                              "slice": unsigned(coordinate_bits(slices)), "last": unsigned(1)})


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


def _check_common(acc_bits, out_min, out_max, frac_bits):
    check_frac_bits(frac_bits)  # before the shifts by frac_bits below
    if not isinstance(acc_bits, int) or isinstance(acc_bits, bool) or not 2 <= acc_bits <= 32:
        raise ValueError(f"acc_bits must be an integer in [2, 32], got {acc_bits!r}")
    for name, bound in (("out_min", out_min), ("out_max", out_max)):
        if not isinstance(bound, (int, np.integer)) or not -128 <= bound <= 127:
            raise ValueError(f"{name} must be an integer in [-128, 127], got {bound!r}")
    if out_min > out_max:
        raise ValueError(f"out_min ({out_min}) must not exceed out_max ({out_max})")


class _RequantPipeline(wiring.Component):
    """The four-stage arithmetic on ``width`` values at once, coefficients from a ROM.

    The ROM holds one row of ``width`` ``(m, s)`` pairs per value of the
    input's index field (``channel`` or ``slice``) and is read
    combinationally, so the coefficients enter the pipeline with their
    values. Subclasses name the ports' fields.
    """

    def _build(self, m, values_in, index, last_in, values_out, last_out):
        width = len(values_in)
        max_shift = max(s for row in self._rows for _, s in row)
        product_bits = self._acc_bits + MULTIPLIER_BITS
        # Wide enough for a * m and for the rounding constant 2**(s-1), plus a carry.
        sum_bits = max(product_bits, max_shift) + 1
        coeff = data.StructLayout({"m": unsigned(MULTIPLIER_BITS),
                                   "s": unsigned(max(1, ceil_log2(max_shift + 1)))})
        row = data.ArrayLayout(coeff, width)
        m.submodules.rom = rom = Memory(
            shape=row, depth=len(self._rows),
            init=[[{"m": mv, "s": sv} for mv, sv in r] for r in self._rows])
        lookup = rom.read_port(domain="comb")
        m.d.comb += lookup.addr.eq(index)

        # Stage registers: valid bits, and what each stage hands on.
        v1, v2, v3 = Signal(), Signal(), Signal()
        l1, l2, l3 = Signal(), Signal(), Signal()
        take4 = ~self.o.valid | self.o.ready
        take3 = ~v3 | take4
        take2 = ~v2 | take3
        take1 = ~v1 | take2
        m.d.comb += self.i.ready.eq(take1)
        with m.If(take1):
            m.d.sync += [v1.eq(self.i.valid), l1.eq(last_in)]
        with m.If(take2):
            m.d.sync += [v2.eq(v1), l2.eq(l1)]
        with m.If(take3):
            m.d.sync += [v3.eq(v2), l3.eq(l2)]
        with m.If(take4):
            m.d.sync += [self.o.valid.eq(v3), last_out.eq(l3)]

        for e in range(width):
            a1, c1 = Signal(signed(self._acc_bits), name=f"a1_{e}"), Signal(coeff, name=f"c1_{e}")
            p2, s2 = Signal(signed(product_bits), name=f"p2_{e}"), Signal.like(c1.s, name=f"s2_{e}")
            q3, s3 = Signal(signed(sum_bits), name=f"q3_{e}"), Signal.like(c1.s, name=f"s3_{e}")
            half = Signal(unsigned(sum_bits - 1), name=f"half_{e}")
            r = Signal(signed(sum_bits), name=f"r_{e}")
            m.d.comb += [half.eq((1 << s2) >> 1), r.eq(q3 >> s3)]
            with m.If(take1):
                m.d.sync += [a1.eq(values_in[e]), c1.eq(lookup.data[e])]
            with m.If(take2):
                m.d.sync += [p2.eq(a1 * c1.m), s2.eq(c1.s)]
            with m.If(take3):
                m.d.sync += [q3.eq(p2 + half), s3.eq(s2)]
            with m.If(take4):
                with m.If(r < self._low):
                    m.d.sync += values_out[e].eq(self._low)
                with m.Elif(r > self._high):
                    m.d.sync += values_out[e].eq(self._high)
                with m.Else():
                    m.d.sync += values_out[e].eq(r)


class Requantiser(_RequantPipeline):
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
        Saturation bounds on the int8 grid, ``-128 <= out_min <= out_max <= 127``.
    frac_bits : int
        Fraction bits of the output, 0..8 (a NetSpec ``Requant.frac_bits``):
        the output saturates to ``[out_min, out_max] * 2**frac_bits`` and is
        ``signed(8 + frac_bits)``.

    Ports
    -----
    i : ``In(stream.Signature(requant_input_layout(channels, acc_bits)))``
        ``a`` (signed(acc_bits)), ``channel`` (unsigned, ``coordinate_bits(channels)``), ``last``.
    o : ``Out(stream.Signature(dense_layout(value_shape(frac_bits))))``
        ``value`` (signed(8 + frac_bits)) and ``last`` (passed through), in
        input order, four cycles after the input when never stalled.
    """

    def __init__(self, channels: int, acc_bits: int, multipliers, shifts,
                 out_min: int = -128, out_max: int = 127, frac_bits: int = 0):
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        _check_common(acc_bits, out_min, out_max, frac_bits)
        self._acc_bits = acc_bits
        mult = _int_array("multipliers", multipliers, channels, 0, 2**MULTIPLIER_BITS - 1)
        shift = _int_array("shifts", shifts, channels, 0, MAX_SHIFT)
        self._rows = [[pair] for pair in zip(mult, shift)]
        self._low, self._high = int(out_min) << int(frac_bits), int(out_max) << int(frac_bits)
        super().__init__({"i": In(stream.Signature(requant_input_layout(channels, acc_bits))),
                          "o": Out(stream.Signature(dense_layout(value_shape(frac_bits))))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i.payload, self.o.payload
        self._build(m, [i.a], i.channel, i.last, [o.value], o.last)
        return m


class VectorRequantiser(_RequantPipeline):
    """:class:`Requantiser` on ``width`` channels at once: one slice of a layer per beat.

    Beat ``slice`` carries channels ``slice*width .. slice*width + width - 1``
    (the drain reads every sum of one output position and pass at once); a
    ROM row per slice gives each of the ``width`` parallel pipelines its
    ``(m, s)``. Channels past ``channels`` (padding of the last slice) are
    requantised with ``m = 0`` and ignored downstream. Same four stages,
    stalls and latency as :class:`Requantiser`; ``width`` multipliers.

    Parameters
    ----------
    channels, width : int
        Channels of the layer and per beat; ``ceil(channels / width)`` slices.
    acc_bits, multipliers, shifts, out_min, out_max, frac_bits :
        As for :class:`Requantiser`.

    Ports
    -----
    i : ``In(stream.Signature(vector_requant_input_layout(width, slices, acc_bits)))``
    o : ``Out(stream.Signature(dense_vector_layout(width, value_shape(frac_bits))))``
    """

    def __init__(self, channels: int, width: int, acc_bits: int, multipliers, shifts,
                 out_min: int = -128, out_max: int = 127, frac_bits: int = 0):
        for name, value in (("channels", channels), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _check_common(acc_bits, out_min, out_max, frac_bits)
        self._acc_bits = acc_bits
        mult = _int_array("multipliers", multipliers, channels, 0, 2**MULTIPLIER_BITS - 1)
        shift = _int_array("shifts", shifts, channels, 0, MAX_SHIFT)
        slices = -(-channels // width)
        pairs = list(zip(mult, shift)) + [(0, 0)] * (slices * width - channels)
        self._rows = [pairs[r * width:(r + 1) * width] for r in range(slices)]
        self._low, self._high = int(out_min) << int(frac_bits), int(out_max) << int(frac_bits)
        super().__init__({
            "i": In(stream.Signature(vector_requant_input_layout(width, slices, acc_bits))),
            "o": Out(stream.Signature(dense_vector_layout(width, value_shape(frac_bits))))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i.payload, self.o.payload
        width = len(self._rows[0])
        self._build(m, [i.a[e] for e in range(width)], i.slice, i.last,
                    [o.values[e] for e in range(width)], o.last)
        return m
