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
The unit is a seven-stage pipeline (:data:`LATENCY`) so that each stage
holds one operation a DSP block or a few LUT levels do comfortably in one
cycle: the coefficient ROM read, the multiplier's operand, product and output
registers (a DSP48E2's A/B, M and P; on an ECP5 a MULT18X18D's input, pipeline
and output registers, :class:`~cosparse.hw.multiplier.RegisteredMultiplier`),
the variable shift, the rounding on the few bits that matter,
then the saturation (:class:`_RequantPipeline`).
"""

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .multiplier import RegisteredMultiplier, is_ecp5
from .skid import SkidBuffer
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


#: Cycles from a beat taken on ``i`` to its result on ``o`` when never stalled.
LATENCY = 7


class _RequantPipeline(wiring.Component):
    """The arithmetic on ``width`` values at once, coefficients from a ROM, in seven stages.

    1. the accumulators and the ROM row of their ``(m, s)`` (a synchronous
       read: block RAM or LUT ROM, its output register the stage's);
    2. the multiplier operands (a DSP48E2's A/B registers);
    3. ``a * m`` (its M register); 4. the product (its P register); on an
       ECP5, stages 2 to 4 are a
       :class:`~cosparse.hw.multiplier.RegisteredMultiplier` with
       ``stages=3``, MULT18X18Ds with their registers (an accumulator wider
       than 18 bits takes two, summed in stage 4);
    5. ``q = (2 * a * m) >> s``, an arithmetic shift (shift first, round after);
    6. ``r = (q + [s > 0]) >> 1`` on the few low bits of ``q`` that an
       unsaturated result can have (``8 + f + 2``), and whether ``q`` fits
       them (the upper bits all equal its sign), which is exactly
       ``(a * m + 2**(s-1)) >> s`` (for ``s > 0``: with ``q' =
       floor(p / 2**(s-1))``, ``floor((p + 2**(s-1)) / 2**s) = floor((q' + 1) / 2)``);
    7. saturation, into the output register slice (:class:`~cosparse.hw.skid.SkidBuffer`).

    No stage holds more than a LUT-level barrel shifter, a 16-bit add or a
    16-bit compare, and the slice's registered ``ready`` is the one enable
    of every stage (the pipeline stalls as a whole), so ``i.ready`` is a
    flip-flop. Subclasses name the ports' fields.
    """

    def _build(self, m, platform, values_in, index, last_in):
        width = len(values_in)
        max_shift = max(s for row in self._rows for _, s in row)
        product_bits = self._acc_bits + MULTIPLIER_BITS
        window = self._out_bits + 2  # bits of q an unsaturated result comes from
        coeff = data.StructLayout({"m": unsigned(MULTIPLIER_BITS),
                                   "s": unsigned(max(1, ceil_log2(max_shift + 1)))})
        row = data.ArrayLayout(coeff, width)
        m.submodules.rom = rom = Memory(
            shape=row, depth=len(self._rows),
            init=[[{"m": mv, "s": sv} for mv, sv in r] for r in self._rows])
        lookup = rom.read_port()
        out_layout = self.o.payload.shape()
        m.submodules.slice = out = SkidBuffer(out_layout)
        wiring.connect(m, out.o, wiring.flipped(self.o))
        advance = out.i.ready
        m.d.comb += [self.i.ready.eq(advance), lookup.addr.eq(index), lookup.en.eq(advance)]

        valid = [Signal(name=f"valid{j}") for j in range(1, 7)]
        lasts = [Signal(name=f"last{j}") for j in range(1, 7)]
        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), lasts[0].eq(last_in)]
            m.d.sync += [v.eq(prev) for v, prev in zip(valid[1:], valid)]
            m.d.sync += [n.eq(prev) for n, prev in zip(lasts[1:], lasts)]
        result = Signal(out_layout)
        m.d.comb += [out.i.valid.eq(valid[-1]), out.i.payload.eq(result),
                     self._last_field(result).eq(lasts[-1])]

        for e in range(width):
            a1 = Signal(signed(self._acc_bits), name=f"a1_{e}")
            p4 = Signal(signed(product_bits), name=f"p4_{e}")
            s2, s3, s4 = (Signal.like(lookup.data[e].s, name=f"s{j}_{e}") for j in (2, 3, 4))
            q5 = Signal(signed(product_bits + 1), name=f"q5_{e}")
            round5 = Signal(name=f"round5_{e}")
            r6 = Signal(signed(window), name=f"r6_{e}")
            fits6, negative6 = Signal(name=f"fits6_{e}"), Signal(name=f"negative6_{e}")
            upper = q5[window - 1:]
            product = self._product(m, platform, e, a1, lookup.data[e].m, p4, advance)
            with m.If(advance):
                m.d.sync += [
                    a1.eq(values_in[e]),
                    *product[:2], s2.eq(lookup.data[e].s),
                    *product[2:3], s3.eq(s2),
                    *product[3:], s4.eq(s3),
                    q5.eq((p4 << 1) >> s4), round5.eq(s4 != 0),
                    r6.eq((q5[:window].as_signed() + round5) >> 1),
                    fits6.eq((upper == 0) | (upper == (1 << len(upper)) - 1)),
                    negative6.eq(q5[-1]),
                ]
            saturated = Mux(negative6, self._low, self._high)
            clamped = Mux(r6 < self._low, self._low, Mux(r6 > self._high, self._high, r6))
            m.d.comb += self._value_field(result, e).eq(Mux(fits6, clamped, saturated))


    def _product(self, m, platform, e, a1, m1, p4, advance):
        """Stages 2 to 4 of lane ``e``: ``p4 = a * m`` of the values in ``a1``, ``m1`` three
        advances before. Returns the sync statements to put under ``advance``: the operand,
        product and output registers written out (``a2``, ``m2``, ``p3``, ``p4``, a DSP48E2's
        A/B, M and P), or none on an ECP5, where a
        :class:`~cosparse.hw.multiplier.RegisteredMultiplier` holds them in MULT18X18Ds
        (:func:`~cosparse.hw.multiplier.is_ecp5`; an accumulator wider than 18 bits takes
        two, summed in stage 4)."""
        if is_ecp5(platform):
            m.submodules[f"multiplier{e}"] = multiplier = RegisteredMultiplier(
                signed(self._acc_bits), unsigned(MULTIPLIER_BITS), stages=3)
            m.d.comb += [multiplier.a.eq(a1), multiplier.b.eq(m1), multiplier.en.eq(advance),
                         p4.eq(multiplier.p)]  # |a * m| < 2**(acc_bits + 15): it fits
            return []
        a2 = Signal.like(a1, name=f"a2_{e}")
        m2 = Signal(unsigned(MULTIPLIER_BITS), name=f"m2_{e}")
        p3 = Signal.like(p4, name=f"p3_{e}")
        return [a2.eq(a1), m2.eq(m1), p3.eq(a2 * m2), p4.eq(p3)]


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
        self._out_bits = 8 + int(frac_bits)
        super().__init__({"i": In(stream.Signature(requant_input_layout(channels, acc_bits))),
                          "o": Out(stream.Signature(dense_layout(value_shape(frac_bits))))})

    def elaborate(self, platform):
        m = Module()
        i = self.i.payload
        self._build(m, platform, [i.a], i.channel, i.last)
        return m

    @staticmethod
    def _value_field(payload, e):
        return payload.value

    @staticmethod
    def _last_field(payload):
        return payload.last


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
        self._out_bits = 8 + int(frac_bits)
        super().__init__({
            "i": In(stream.Signature(vector_requant_input_layout(width, slices, acc_bits))),
            "o": Out(stream.Signature(dense_vector_layout(width, value_shape(frac_bits))))})

    def elaborate(self, platform):
        m = Module()
        i = self.i.payload
        width = len(self._rows[0])
        self._build(m, platform, [i.a[e] for e in range(width)], i.slice, i.last)
        return m

    @staticmethod
    def _value_field(payload, e):
        return payload.values[e]

    @staticmethod
    def _last_field(payload):
        return payload.last
