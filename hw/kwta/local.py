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
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_vector_layout, sparse_layout
from ..sparsify import PositionEmitter, emitter_input_layout

__all__ = ["LocalKWTA", "SEARCH_CYCLES"]

#: Cycles the threshold search spends on one position (load + four 2-bit steps).
SEARCH_CYCLES = 5

_STEP_BITS = 2  # threshold bits decided per cycle
_STEPS = 8 // _STEP_BITS


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
        winner of value 0 is dropped, as it contributes nothing). False
        (dense baseline): emit all ``C`` channels of every position, losers
        as 0.

    Ports
    -----
    i : ``In(stream.Signature(dense_vector_layout(C)))``
        One position per beat, raster order, ``last`` on the input's final
        position. An input must have exactly ``H*W`` beats (not checked).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        ``value``, ``c``, ``y``, ``x``, ``last`` on the input's final beat;
        an input without a non-zero winner is the single value-0 beat.

    Throughput: a position every :data:`SEARCH_CYCLES` cycles in, and out
    one beat per non-zero winner (at least one cycle per position; ``C``
    with ``skip_zeros`` False); the two overlap, so a position costs the
    larger.
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True):
        _check_kwta(shape, k, skip_zeros, dims=(3,))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[0]:
            raise ValueError(f"k must be an integer in [1, {shape[0]}] (the channels), got {k!r}")
        self._shape, self._k, self._skip = shape, k, skip_zeros
        super().__init__({"i": In(stream.Signature(dense_vector_layout(shape[0]))),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, k = self._shape[0], self._k
        m.submodules.emitter = emitter = PositionEmitter(self._shape, self._skip)
        wiring.connect(m, emitter.o, wiring.flipped(self.o))

        # The position under search; values compared as unsigned with the sign bit flipped,
        # which orders them as the signed int8 they are.
        held = Signal(dense_vector_layout(channels))
        biased = [Cat(held.values[c][:7], ~held.values[c][7]) for c in range(channels)]
        threshold = Signal(8)
        step = Signal(range(_STEPS + 1))
        searching = Signal()
        ranking = Signal()

        # One step: the largest of the three candidates (and the threshold so far) that keeps
        # at least k values at or above it.
        shift = Signal(range(8))
        m.d.comb += shift.eq(8 - _STEP_BITS - step * _STEP_BITS)
        chosen = Const(0, _STEP_BITS)
        for digit in range(1, 1 << _STEP_BITS):
            candidate = threshold | (Const(digit, 8) << shift)[:8]
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
            kept = [Mux(winners[c], held.values[c], 0) for c in range(channels)]
            mask = [winners[c] & (held.values[c] != 0) if self._skip else Const(1, 1)
                    for c in range(channels)]
            m.d.sync += [out_valid.eq(1), out.mask.eq(Cat(*mask)), out.last.eq(held.last),
                         ranking.eq(0)]
            m.d.sync += [out.values[c].eq(kept[c]) for c in range(channels)]

        with m.If(searching):
            m.d.sync += [threshold.eq(threshold | (chosen << shift)[:8]), step.eq(step + 1)]
            with m.If(step == _STEPS - 1):
                m.d.sync += [searching.eq(0), ranking.eq(1)]

        idle = ~searching & (~ranking | rank_now)
        m.d.comb += self.i.ready.eq(idle)
        with m.If(self.i.valid & idle):
            m.d.sync += [held.eq(self.i.payload), threshold.eq(0), step.eq(0), searching.eq(1)]
        return m
