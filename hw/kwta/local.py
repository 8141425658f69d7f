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

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..layouts import check_frac_bits, dense_vector_layout, sparse_layout, value_shape
from ..skid import SkidBuffer
from ..sparsify import PositionEmitter, emitter_input_layout

__all__ = ["LocalKWTA", "search_cycles", "round_fraction", "STEP_BITS"]

_STEP_BITS = 2  # threshold bits decided per cycle


#: Threshold bits a search step may decide (LocalKWTA ``step_bits``).
STEP_BITS = (2, 3)


def _check_step_bits(step_bits):
    if step_bits not in STEP_BITS or isinstance(step_bits, bool):
        raise ValueError(f"step_bits must be one of {STEP_BITS}, got {step_bits!r}")
    return step_bits


def _steps(frac_bits: int, step_bits: int = _STEP_BITS) -> int:
    """Search steps for ``8 + frac_bits`` bit values: ``ceil((8 + frac_bits) / step_bits)``."""
    return -(-(8 + check_frac_bits(frac_bits)) // _check_step_bits(step_bits))


def search_cycles(frac_bits: int = 0, step_bits: int = _STEP_BITS) -> int:
    """Cycles the threshold search spends on one position: one to load, then one per
    ``step_bits``-bit step of the ``8 + frac_bits`` bit values (5 for int8 at 2 bits a
    step; 7 for ``f = 4`` at 2 bits, 5 at 3).

    The unit takes at most one position per this many cycles; the summary's
    cycle model (hw/generate.py) and the benches use it.
    """
    return 1 + _steps(frac_bits, step_bits)


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


def count_ones(bits):
    """Number of set bits of ``bits`` (a list of 1-bit values), for the small groups counted
    below: the bits summed pairwise, a balanced tree of small adders.

    Written as adders, not as a network of full- and half-adder gates: the generated Verilog
    then holds one line per adder instead of one per gate (a local k-WTA of the default
    network: about a third of the text), and synthesis maps the adders onto carry chains
    at no more logic levels (``python bench/unit_depth.py --only kwta_local``: 7 either way).
    """
    values = [Value.cast(bit).as_unsigned() for bit in bits] or [Const(0, 1)]
    return _sum_tree(values, ceil_log2(len(values)))[0]


def _sum_tree(values, rounds):
    """Sum ``values`` pairwise, ``rounds`` times (fewer if they run out): a list of partial sums."""
    for _ in range(rounds):
        if len(values) == 1:
            break
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values


_GROUP = 8  # channels counted together in one small adder network
_RING = 4  # pipeline stages of one search step, and positions searched at once


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
    step_bits : int
        Threshold bits decided per search step, 2 (default) or 3: 3 takes
        ``2**3 - 1 = 7`` candidate digits per step (7 comparators and
        counts per channel instead of 3) for fewer steps, so a position
        costs :func:`search_cycles` ``(f, 3)`` (4 cycles for int8, 5 for
        ``f = 4``): the unit keeps pace with a faster engine, or with
        fewer winners (small ``k``) per position.

    Ports
    -----
    i : ``In(stream.Signature(dense_vector_layout(C, value_shape(frac_bits))))``
        One position per beat, raster order, ``last`` on the input's final
        position. An input must have exactly ``H*W`` beats (not checked).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        int8 ``value``, ``c``, ``y``, ``x``, ``last`` on the input's final
        beat; an input without a non-zero winner is the single value-0 beat.

    Throughput: a position every :func:`search_cycles` ``(frac_bits)``
    cycles in (at best one every ``search_cycles - 1``), and out one beat
    per non-zero winner (at least one cycle per position; ``C`` with
    ``skip_zeros`` False); the two overlap, so a position costs the larger.

    Structure (docs/hw-kwta.md): the threshold is searched ``step_bits`` (two) bits a step,
    most significant first, on flags per channel (``alive``: equal to the
    threshold so far, ``above``: already greater) and the number ``need``
    of winners still to find among the alive channels; a step counts the
    alive channels whose next bits reach each candidate digit and keeps
    the largest digit with ``count >= need``. One step is a ring of
    :data:`_RING` register stages (count groups of 8, add them in two
    rounds, compare and update), and :data:`_RING` positions circulate in
    it at once, one stage apart, so the unit still finishes a position per
    step count of cycles while no stage is deeper than a few LUTs. A
    position leaves the ring with ``above`` (the channels above the
    threshold), ``alive`` (those equal to it) and ``need`` (how many of
    those win, lowest channels first); a four-stage ranking pipeline rounds
    the values and picks the ties by prefix counts, into the emitter.
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True, frac_bits: int = 0,
                 step_bits: int = _STEP_BITS):
        _check_kwta(shape, k, skip_zeros, dims=(3,))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[0]:
            raise ValueError(f"k must be an integer in [1, {shape[0]}] (the channels), got {k!r}")
        self._frac = check_frac_bits(frac_bits)
        self._step_bits = _check_step_bits(step_bits)
        self._shape, self._k, self._skip = shape, k, skip_zeros
        super().__init__({
            "i": In(stream.Signature(dense_vector_layout(shape[0], value_shape(self._frac)))),
            "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, k, frac = self._shape[0], self._k, self._frac
        m.submodules.emitter = emitter = PositionEmitter(self._shape, self._skip)
        wiring.connect(m, emitter.o, wiring.flipped(self.o))

        step_bits = self._step_bits
        digits = (1 << step_bits) - 1  # candidate digits 1 .. digits of a step
        bits, steps = 8 + frac, _steps(frac, step_bits)
        width = steps * step_bits  # whole steps: a short width gets 0s on top
        groups = [list(range(g, min(g + _GROUP, channels))) for g in range(0, channels, _GROUP)]
        seq_bits = ceil_log2(_RING) + 1
        slot = data.StructLayout({
            "digits": data.ArrayLayout(unsigned(width), channels),  # biased, rotating by 2
            "alive": unsigned(channels), "above": unsigned(channels),
            "need": range(k + 1), "step": range(steps + 1),
            "valid": unsigned(1), "last": unsigned(1), "seq": unsigned(seq_bits)})
        ring = [Signal(slot, name=f"ring{r}") for r in range(_RING)]
        count_bits = unsigned(ceil_log2(_GROUP + 1))
        group_counts = [[Signal(count_bits, name=f"group{d}_{g}") for g in range(len(groups))]
                        for d in range(1, digits + 1)]
        halves = [[Signal(unsigned(ceil_log2(channels + 1)), name=f"half{d}_{h}")
                   for h in range(2)] for d in range(1, digits + 1)]
        rem_shape = signed(ceil_log2(channels + 1) + 2)
        # need - count(>= d)
        rems = [Signal(rem_shape, name=f"rem{d}") for d in range(1, digits + 1)]

        # Stage 0 -> 1: per candidate digit d, the alive channels whose next step_bits
        # bits reach d, counted in groups of 8.
        top = [ring[0].digits[c][width - step_bits:] for c in range(channels)]
        for d in range(1, digits + 1):
            for g, members in enumerate(groups):
                m.d.sync += group_counts[d - 1][g].eq(
                    count_ones([ring[0].alive[c] & (top[c] >= d) for c in members]))
        # Stage 1 -> 2 and 2 -> 3: the group counts added up, then taken from need.
        for d in range(1, digits + 1):
            # Two halves (two adder rounds up to 64 channels, more beyond).
            parts = _sum_tree(list(group_counts[d - 1]), max(0, ceil_log2(len(groups)) - 1))
            for h in range(2):
                m.d.sync += halves[d - 1][h].eq(parts[h] if h < len(parts) else 0)
            m.d.sync += rems[d - 1].eq(ring[2].need - halves[d - 1][0] - halves[d - 1][1])
        m.d.sync += [ring[1].eq(ring[0]), ring[2].eq(ring[1]), ring[3].eq(ring[2])]

        # Stage 3 -> 0: keep the largest digit with count >= need, update the flags.
        last_slot = ring[3]
        enough = [r <= 0 for r in rems]
        # need - count(> chosen): rem of the next digit, need itself above the top digit.
        chosen, following = Const(0, step_bits), rems[0]
        for d in range(1, digits + 1):
            chosen = Mux(enough[d - 1], d, chosen)
            following = Mux(enough[d - 1], rems[d] if d < digits else last_slot.need, following)
        active = last_slot.valid & (last_slot.step != steps)
        updated = Signal(slot)
        m.d.comb += updated.eq(last_slot)
        with m.If(active):
            m.d.comb += [updated.need.eq(following), updated.step.eq(last_slot.step + 1)]
            for c in range(channels):
                digit = last_slot.digits[c][width - step_bits:]
                alive = last_slot.alive[c]
                m.d.comb += [
                    updated.digits[c].eq(Cat(digit, last_slot.digits[c][:width - step_bits])),
                    updated.alive[c].eq(alive & (digit == chosen)),
                    updated.above[c].eq(last_slot.above[c] | (alive & (digit > chosen)))]

        # Ranking pipeline (valid bits v[0..3], the last one the emitter's input register).
        # Rank 0 is a register slice (SkidBuffer): a position leaves the ring on the slice's
        # registered ready, so the ranking pipeline's stall chain from the emitter stops at
        # the slice instead of reaching `free` and the select of what ring[0] loads (the
        # critical path of the scaled network on the ECP5: 10.4 ns, 8.7 of it routing).
        m.submodules.searched = searched_slice = SkidBuffer(slot)
        valid = [searched_slice.o.valid] + [Signal(name=f"rank_valid{j}") for j in range(1, 4)]
        move = [None] + [Signal(name=f"rank_move{j}") for j in range(1, 4)]
        m.d.comb += move[3].eq(~valid[3] | emitter.i.ready)
        for j in reversed(range(1, 3)):
            m.d.comb += move[j].eq(~valid[j] | move[j + 1])
        exit_seq, load_seq = Signal(seq_bits), Signal(seq_bits)
        leaving = (last_slot.valid & (last_slot.step >= steps - 1)
                   & (last_slot.seq == exit_seq) & searched_slice.i.ready)
        free = ~last_slot.valid | leaving
        m.d.comb += self.i.ready.eq(free)
        fresh = Signal(slot)
        values = self.i.payload.values
        m.d.comb += [fresh.alive.eq(-1), fresh.need.eq(k), fresh.valid.eq(1),
                     fresh.last.eq(self.i.payload.last), fresh.seq.eq(load_seq)]
        m.d.comb += [fresh.digits[c].eq(Cat(values[c][:bits - 1], ~values[c][bits - 1]))
                     for c in range(channels)]
        with m.If(free):
            m.d.sync += ring[0].eq(Mux(self.i.valid, fresh, 0))
            with m.If(self.i.valid):
                m.d.sync += load_seq.eq(load_seq + 1)
        with m.Else():
            m.d.sync += ring[0].eq(updated)
        with m.If(leaving):
            m.d.sync += exit_seq.eq(exit_seq + 1)

        # Rank 0: the searched position (digits rotated back to the biased values).
        m.d.comb += [searched_slice.i.valid.eq(leaving), searched_slice.i.payload.eq(updated),
                     searched_slice.o.ready.eq(move[1])]
        searched = searched_slice.o.payload
        # Rank 1: winners rounded to int8, non-zero flags, tie counts within groups of 8.
        rank = data.StructLayout({
            "values": data.ArrayLayout(signed(8), channels), "nonzero": unsigned(channels),
            "above": unsigned(channels), "equal": unsigned(channels),
            "before": data.ArrayLayout(unsigned(ceil_log2(_GROUP)), channels),
            "totals": data.ArrayLayout(count_bits, len(groups)),
            "offsets": data.ArrayLayout(unsigned(ceil_log2(channels + 1)), len(groups)),
            "need": range(k + 1), "last": unsigned(1)})
        first, second = Signal(rank), Signal(rank)
        with m.If(move[1]):
            m.d.sync += [valid[1].eq(valid[0]), first.above.eq(searched.above),
                         first.equal.eq(searched.alive), first.need.eq(searched.need),
                         first.last.eq(searched.last)]
            for c in range(channels):
                biased = searched.digits[c]
                value = Signal(signed(bits), name=f"value{c}")
                m.d.comb += value.eq(Cat(biased[:bits - 1], ~biased[bits - 1]))
                rounded = round_fraction(value, frac)
                m.d.sync += [first.values[c].eq(rounded), first.nonzero[c].eq(rounded != 0)]
            for g, members in enumerate(groups):
                m.d.sync += first.totals[g].eq(count_ones([searched.alive[c] for c in members]))
                for i, c in enumerate(members):
                    m.d.sync += first.before[c].eq(
                        count_ones([searched.alive[b] for b in members[:i]]) if i else 0)
        # Rank 2: where each group's ties start in the position's tie order.
        with m.If(move[2]):
            m.d.sync += [valid[2].eq(valid[1]), second.eq(first)]
            for g in range(len(groups)):
                terms = [first.totals[b] for b in range(g)]
                total = _sum_tree(terms, ceil_log2(len(terms)))[0] if terms else 0
                m.d.sync += second.offsets[g].eq(total)
        # Rank 3 (the emitter's input): above wins; of the ties, the first need.
        out = Signal(emitter_input_layout(channels))
        m.d.comb += [emitter.i.valid.eq(valid[3]), emitter.i.payload.eq(out)]
        with m.If(move[3]):
            m.d.sync += [valid[3].eq(valid[2]), out.last.eq(second.last)]
            for g, members in enumerate(groups):
                room = Signal(signed(ceil_log2(channels + 1) + 2), name=f"room{g}")
                m.d.comb += room.eq(second.need - second.offsets[g])
                for c in members:
                    wins = second.above[c] | (second.equal[c] & (second.before[c] < room))
                    m.d.sync += [out.values[c].eq(Mux(wins, second.values[c], 0)),
                                 out.mask[c].eq(wins & second.nonzero[c] if self._skip else 1)]
        return m
