"""Local k-WTA: the k largest of the C channel values at every position.

A convolution engine emits one position per beat, all ``C`` channels at
once (hw/layouts.py, dense vector). Its winners are found by a threshold
search rather than by ranking every channel against every other: the k-th
largest value ``T`` is the largest ``T`` with ``count(v >= T) >= k``, and
its bits are found from the most significant down, two per cycle (three
candidate thresholds compared with all ``C`` values and counted at once), so
four cycles settle an int8 threshold. Then every channel above ``T`` wins,
and of the channels equal to ``T`` the ``t = k - count(v > T)`` lowest win
(a prefix count of the equal channels ranks them): exactly docs/netspec.md's
lower-index tie rule, and exactly ``k`` winners.

Why not a comparison matrix (every value against every other, then a
popcount per channel)? It decides a position per cycle, but costs ``C^2``
comparators and ``C`` popcounts of ``C - 1`` bits: about 4k comparators
for ``C = 64``, all evaluated every cycle by a cycle-based simulator (27 us
a cycle in Verilator, more than all the engines together). A position
leaves as one beat per non-zero winner, ``k`` cycles for a full position,
so a search of five cycles a position (one to load, four steps; the
ranking of ties overlaps the next load) costs no throughput whenever
``k >= 5``, with ``3C`` comparators and three popcounts.

Fraction bits (NetSpec version 2): when the requantisation before the
k-WTA keeps ``f = frac_bits`` extra fraction bits, the values are
``signed(8 + f)`` and the winners are ranked on them (ties and near-ties are
decided on the finer grid), then each winner leaves rounded half up to int8,
``(v + 2**(f-1)) >> f``; a winner that rounds to 0 is dropped like any zero.
The search then needs ``ceil((8 + f) / 2)`` steps, so a position costs
:func:`search_cycles` ``(f) = 1 + ceil((8 + f) / 2)`` cycles (5 for ``f =
0``, 6 for ``f = 2``, 7 for ``f = 4``, 9 for ``f = 8``), the comparators and
the threshold grow by ``f`` bits, and ``C`` rounding adders of ``9 + f``
bits sit before the output register. None of that exists for ``f = 0``.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import check_frac_bits, dense_vector_layout, sparse_layout, value_shape
from ..sparsify import PositionEmitter, emitter_input_layout

__all__ = ["LocalKWTA", "search_cycles", "round_fraction"]

_STEP_BITS = 2  # threshold bits decided per cycle


def _steps(frac_bits: int) -> int:
    """Search steps for ``8 + frac_bits`` bit values: ``ceil((8 + frac_bits) / 2)``."""
    return -(-(8 + check_frac_bits(frac_bits)) // _STEP_BITS)


def search_cycles(frac_bits: int = 0) -> int:
    """Cycles the threshold search spends on one position: one to load, then one per
    2-bit step of the ``8 + frac_bits`` bit values (5 for int8).

    The unit takes at most one position per this many cycles; the summary's
    cycle model (hw/generate.py) and the benches use it.
    """
    return 1 + _steps(frac_bits)


def round_fraction(value, frac_bits: int):
    """``value`` (``signed(8 + frac_bits)``) rounded half up to int8: ``(v + 2**(f-1)) >> f``.

    The largest value, ``127 * 2**f``, rounds to 127 and the smallest to
    -128, so the result always fits the 8 bits returned (their two's
    complement pattern). ``frac_bits = 0`` returns ``value`` itself.
    """
    if not check_frac_bits(frac_bits):
        return value
    return (value + (1 << (frac_bits - 1)))[frac_bits:frac_bits + 8]


def _check_kwta(shape, k, skip_zeros, dims):
    sparse_layout(shape)  # validates the shape
    if len(shape) not in dims:
        raise TypeError(f"shape must have {' or '.join(map(str, dims))} dimensions, got {shape!r}")
    if not isinstance(skip_zeros, bool):
        raise TypeError(f"skip_zeros must be a bool, got {skip_zeros!r}")


def _popcount(bits):
    """Number of set bits, as a balanced adder tree (widths grow by one per level)."""
    if not bits:
        return Const(0, 1)
    while len(bits) > 1:
        bits = [bits[i] + bits[i + 1] if i + 1 < len(bits) else bits[i]
                for i in range(0, len(bits), 2)]
    return bits[0]


def _exclusive_prefix_counts(bits):
    """``counts[c]`` = number of set bits among ``bits[:c]`` (a log-depth prefix network)."""
    sums = list(bits)
    step = 1
    while step < len(sums):
        sums = [sums[c] + sums[c - step] if c >= step else sums[c] for c in range(len(sums))]
        step *= 2
    return [total - bit for total, bit in zip(sums, bits)]


class LocalKWTA(wiring.Component):
    """Keep the ``k`` largest of the ``C`` channels at each position, as a sparse stream.

    Parameters
    ----------
    shape : tuple
        ``(C, H, W)``.
    k : int
        Winners per position, ``1 <= k <= C``.
    skip_zeros : bool
        True: emit each position's non-zero winners, channels ascending (a
        winner of value 0, after rounding, is dropped, as it contributes
        nothing). False (dense baseline): emit all ``C`` channels of every
        position, losers as 0.
    frac_bits : int
        Fraction bits of the input values, 0..8 (the NetSpec k-WTA's
        ``frac_bits``): they are ``signed(8 + frac_bits)``, ranked as they
        are and rounded half up to int8 on the way out.

    Ports
    -----
    i : ``In(stream.Signature(dense_vector_layout(C, value_shape(frac_bits))))``
        One position per beat, raster order, ``last`` on the input's final
        position. An input must have exactly ``H*W`` beats (not checked).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        int8 ``value``, ``c``, ``y``, ``x``, ``last`` on the input's final
        beat; an input without a non-zero winner is the single value-0 beat.

    Throughput: a position every :func:`search_cycles` ``(frac_bits)``
    cycles in, and out one beat per non-zero winner (at least one cycle per
    position; ``C`` with ``skip_zeros`` False); the two overlap, so a
    position costs the larger.
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True, frac_bits: int = 0):
        _check_kwta(shape, k, skip_zeros, dims=(3,))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[0]:
            raise ValueError(f"k must be an integer in [1, {shape[0]}] (the channels), got {k!r}")
        self._frac = check_frac_bits(frac_bits)
        self._shape, self._k, self._skip = shape, k, skip_zeros
        super().__init__({
            "i": In(stream.Signature(dense_vector_layout(shape[0], value_shape(self._frac)))),
            "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, k = self._shape[0], self._k
        m.submodules.emitter = emitter = PositionEmitter(self._shape, self._skip)
        wiring.connect(m, emitter.o, wiring.flipped(self.o))

        # The position under search; values compared as unsigned with the sign bit flipped,
        # which orders them as the signed integers they are. The threshold has a whole
        # number of 2-bit steps (one bit more than odd-width values: its top bit stays 0).
        bits, steps = 8 + self._frac, _steps(self._frac)
        width = steps * _STEP_BITS
        held = Signal(dense_vector_layout(channels, value_shape(self._frac)))
        biased = [Cat(held.values[c][:bits - 1], ~held.values[c][bits - 1])
                  for c in range(channels)]
        threshold = Signal(width)
        step = Signal(range(steps + 1))
        searching = Signal()
        ranking = Signal()

        # One step: the largest of the three candidates (and the threshold so far) that keeps
        # at least k values at or above it.
        shift = Signal(range(width))
        m.d.comb += shift.eq(width - _STEP_BITS - step * _STEP_BITS)
        chosen = Const(0, _STEP_BITS)
        for digit in range(1, 1 << _STEP_BITS):
            candidate = threshold | (Const(digit, width) << shift)[:width]
            enough = _popcount([value >= candidate for value in biased]) >= k
            chosen = Mux(enough, digit, chosen)

        # Ranking: above the threshold wins; of the values equal to it, the lowest t channels.
        above = [value > threshold for value in biased]
        equal = [value == threshold for value in biased]
        ties_allowed = Signal(range(k + 1))
        m.d.comb += ties_allowed.eq(k - _popcount(above))
        winners = [a | (e & (rank < ties_allowed))
                   for a, e, rank in zip(above, equal, _exclusive_prefix_counts(equal))]

        # The ranked position waits in the emitter's input register while the next is searched.
        out = Signal(emitter_input_layout(channels))
        out_valid = Signal()
        m.d.comb += [emitter.i.valid.eq(out_valid), emitter.i.payload.eq(out)]
        with m.If(emitter.i.ready):
            m.d.sync += out_valid.eq(0)
        rank_now = ranking & (~out_valid | emitter.i.ready)
        with m.If(rank_now):
            # Winners leave as int8 (rounded half up when they carry fraction bits).
            rounded = [round_fraction(held.values[c], self._frac) for c in range(channels)]
            kept = [Mux(winners[c], rounded[c], 0) for c in range(channels)]
            mask = [winners[c] & (rounded[c] != 0) if self._skip else Const(1, 1)
                    for c in range(channels)]
            m.d.sync += [out_valid.eq(1), out.mask.eq(Cat(*mask)), out.last.eq(held.last),
                         ranking.eq(0)]
            m.d.sync += [out.values[c].eq(kept[c]) for c in range(channels)]

        with m.If(searching):
            m.d.sync += [threshold.eq(threshold | (chosen << shift)[:width]), step.eq(step + 1)]
            with m.If(step == steps - 1):
                m.d.sync += [searching.eq(0), ranking.eq(1)]

        idle = ~searching & (~ranking | rank_now)
        m.d.comb += self.i.ready.eq(idle)
        with m.If(self.i.valid & idle):
            m.d.sync += [held.eq(self.i.payload), threshold.eq(0), step.eq(0), searching.eq(1)]
        return m
