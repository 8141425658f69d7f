"""Wide global k-WTA: ``width`` values per beat and a two-level histogram.

:class:`~.global_.GlobalKWTA` takes one value per cycle and scans its whole
``2**(8 + f)``-bin histogram once per input, one bin per cycle, before it
emits all ``S`` buffered values one per cycle: ``2**(8 + f) + S + 1`` cycles
per input (1,757 for the default network's 1,500 values), whatever ``k``.
Behind a drain that emits ``width`` channels per beat
(:class:`~..engine.drain.ChannelDrain`) that would bind the pipeline, and
fewer winners would not shorten it. This unit does the same selection with
every phase scaled down:

- fill: ``width`` values per cycle, ``ceil(S / width)`` cycles. Each lane has
  a histogram of its own (``2**(8 + f)`` bins, one read-modify-write per
  cycle), and a coarse histogram of ``2**c`` bins (the top ``c`` bits of
  the value, ``c = ceil((8 + f) / 2)``) is kept in registers: each cycle
  every coarse bin adds how many of the beat's lanes fall in it.
- scan, two levels: the coarse bins from the top until the count reaches
  ``k`` (at most ``2**c`` cycles), then the ``2**(8 + f - c)`` fine bins of
  that coarse bin, each the sum of the lanes' histograms (at most
  ``2**(8 + f - c)`` cycles): 32 cycles instead of 256 for int8, 128
  instead of 4,096 for ``f = 4``. Each level is a two-stage pipeline (the
  count is registered before it is compared), so a level costs one cycle
  more than its bins. The result is the threshold ``T`` with
  ``count(> T) < k <= count(>= T)`` and ``t = k - count(> T)``.
- emit: the buffered words in flat order, one per cycle into a
  :class:`~..sparsify.PositionEmitter` that sends a word's winners one per
  cycle: ``max(1, winners)`` cycles per word, so about ``S / width + k``
  cycles per input. A lane wins if its value is above ``T``, or equals it
  and fewer than ``t`` earlier values (earlier words, then lower lanes)
  equalled it: docs/netspec.md's lower-index tie rule. The emit pass also
  clears the lane histograms: it writes 0 to the bin of every value it
  reads, which are exactly the bins the fill incremented, so no full scan
  is needed to clear them; the coarse registers are cleared at once.

Two banks (buffer, lane histograms and coarse registers) alternate, so the
next input fills one while the previous one is scanned and emitted from the
other: :func:`wide_scan_cycles` per input in a stream.
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layouts import check_frac_bits, dense_vector_layout, sparse_layout, value_shape
from ..sparsify import PositionEmitter
from .local import _check_kwta, count_ones, round_fraction

__all__ = ["GlobalWideKWTA", "levels", "wide_scan_cycles", "PIPELINE_CYCLES"]

#: Cycles per input besides the bins and words: the start of the scan, one per level for
#: its registered count, one for the fine level's registered read, and the first buffer read.
PIPELINE_CYCLES = 5


def levels(frac_bits: int = 0) -> tuple:
    """``(coarse, fine)`` bits of the two-level histogram of ``8 + frac_bits`` bit values:
    ``ceil((8 + f) / 2)`` and ``floor((8 + f) / 2)`` (``2**c`` coarse bins, each of
    ``2**(8 + f - c)`` fine bins)."""
    bits = 8 + check_frac_bits(frac_bits)
    return (bits + 1) // 2, bits // 2


def wide_scan_cycles(size: int, width: int, frac_bits: int = 0, winners=None,
                     threshold=None) -> int:
    """Cycles per input in a stream (output never stalled):
    ``max(ceil(S / w), scan + E + PIPELINE_CYCLES)``. ``E`` is the emit pass,
    ``sum over words of max(1, winners in the word)`` (``winners``: the count per word,
    the dense baseline's every value; None: one cycle per word, the fewest). ``scan``
    is the bins visited from the top down to the threshold's, ``2**c - coarse(T)``
    coarse and ``2**(8+f-c) - fine(T)`` fine ones (``threshold``: ``T``, the k-th
    largest value, ``signed(8 + f)``), at most ``2**c + 2**(8 + f - c)`` (None: that
    bound). The fill of the next input overlaps the scan and emit."""
    words = -(-size // width)
    coarse, fine = levels(frac_bits)
    emit = words if winners is None else int(sum(max(1, int(w)) for w in winners))
    scan = (1 << coarse) + (1 << fine)
    if threshold is not None:
        key = int(threshold) + (1 << (7 + check_frac_bits(frac_bits)))
        scan -= (key >> fine) + (key & ((1 << fine) - 1))
    return max(words, scan + emit + PIPELINE_CYCLES)


class GlobalWideKWTA(wiring.Component):
    """Keep the ``k`` largest of each ``(S,)`` input, taking ``width`` values per beat.

    Parameters
    ----------
    shape : tuple
        ``(S,)``.
    k : int
        Winners per input, ``1 <= k <= S``.
    width : int
        Values per input beat; the last beat of an input holds ``S - (ceil(S /
        width) - 1) * width`` values in its low lanes (the rest are ignored).
    skip_zeros : bool
        True: emit the non-zero winners. False (dense baseline): emit all ``S``
        values, losers as 0.
    frac_bits : int
        Fraction bits of the input values, 0..8 (see :class:`~.global_.GlobalKWTA`);
        the winners leave rounded half up to int8.

    Ports
    -----
    i : ``In(stream.Signature(dense_vector_layout(width, value_shape(frac_bits))))``
        ``values[l]`` is element ``beat * width + l``; ``last`` on the final beat of
        an input, which must have exactly ``ceil(S / width)`` beats (not checked:
        otherwise the winners are unspecified, but each input still yields one
        closed output).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        The int8 winners in ascending index, ``last`` on the final one; an input
        without a non-zero winner is the single value-0 beat.

    Cycles: :func:`wide_scan_cycles` per input in a stream.
    Memory: two ``ceil(S / width) x width*(8 + f)`` buffers, ``2 x width``
    lane histograms of ``2**(8 + f) x ceil_log2(S+1)`` bits (each with a
    synchronous read port for the fine scan and one for the two-stage count:
    distributed RAM, held twice) and ``2 x 2**c`` coarse counters in registers.
    """

    def __init__(self, shape: tuple, k: int, width: int, skip_zeros: bool = True,
                 frac_bits: int = 0):
        _check_kwta(shape, k, skip_zeros, dims=(1,))
        size = shape[0]
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= size:
            raise ValueError(f"k must be an integer in [1, {size}] (the tensor size), got {k!r}")
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= size:
            raise ValueError(f"width must be an integer in [1, {size}] (the tensor size), "
                             f"got {width!r}")
        self._frac = check_frac_bits(frac_bits)
        self._size, self._k, self._width, self._skip = size, k, width, skip_zeros
        super().__init__({
            "i": In(stream.Signature(dense_vector_layout(width, value_shape(self._frac)))),
            "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        size, k, width, frac = self._size, self._k, self._width, self._frac
        words = -(-size // width)
        tail = size - (words - 1) * width  # values in the last word
        bits = 8 + frac
        coarse_bits, fine_bits = levels(frac)
        count_shape = unsigned(size.bit_length())

        def key(value):
            """The value as an unsigned key of the same order (sign bit flipped)."""
            return Cat(value[:bits - 1], ~value[bits - 1])

        def lane_valid(last_word):
            return [Const(1, 1) if lane < tail else ~last_word for lane in range(width)]

        # The emit pass clears only the bins of the values it emits, so a reset in mid-fill
        # would leave counts behind that no later input clears: after reset every bin of
        # both banks is written to 0, one per cycle, before the first value is taken.
        wiping, wipe_at = Signal(init=1), Signal(bits)
        m.d.sync += wipe_at.eq(wipe_at + 1)
        with m.If(wipe_at == (1 << bits) - 1):
            m.d.sync += wiping.eq(0)

        # Fill: ``width`` values per cycle into the fill bank.
        fill_bank, drain_bank = Signal(), Signal()
        full = Signal(2)  # bank b belongs to the drain side while full[b]
        fill_word = Signal(range(words))
        beat = self.i.payload
        fill = self.i.valid & self.i.ready
        fill_last_word = fill_word == words - 1
        fill_valid = lane_valid(fill_last_word)
        m.d.comb += self.i.ready.eq(~full.bit_select(fill_bank, 1) & ~wiping)
        with m.If(fill):
            m.d.sync += fill_word.eq(Mux(fill_last_word | beat.last, 0, fill_word + 1))
            with m.If(beat.last):
                m.d.sync += [full.bit_select(fill_bank, 1).eq(1), fill_bank.eq(~fill_bank)]

        # Coarse deltas, registered: how many of the beat's lanes fall in each coarse bin.
        delta_shape = unsigned(width.bit_length())
        deltas = [Signal(delta_shape, name=f"delta{b}") for b in range(1 << coarse_bits)]
        delta_bank, delta_valid = Signal(), Signal()
        coarse_of = [key(beat.values[lane])[fine_bits:] for lane in range(width)]
        m.d.sync += [delta_valid.eq(fill), delta_bank.eq(fill_bank)]
        for b, delta in enumerate(deltas):
            m.d.sync += delta.eq(count_ones([fill_valid[lane] & (coarse_of[lane] == b)
                                             for lane in range(width)]))

        # Drain side: scan (coarse, then fine) and emit, then hand the bank back.
        state = Signal(range(4))  # 0 idle, 1 coarse scan, 2 fine scan, 3 emit
        coarse_at = Signal(coarse_bits)
        fine_at = Signal(fine_bits)
        picked = Signal(count_shape)  # the count read in the previous cycle
        picked_valid = Signal()
        picked_bin = Signal(max(coarse_bits, fine_bits))
        need = Signal(range(k + 1))  # winners still to place: k - count(above the bin)
        found_coarse = Signal(coarse_bits)
        threshold = Signal(bits)  # as a key
        ties = Signal(range(k + 1))  # winners equal to the threshold still to take
        release = Signal()

        counters = [[Signal(count_shape, name=f"coarse{bank}_{b}")
                     for b in range(1 << coarse_bits)] for bank in range(2)]
        for bank in range(2):
            with m.If(release & (drain_bank == bank)):
                m.d.sync += [c.eq(0) for c in counters[bank]]
            with m.Elif(delta_valid & (delta_bank == bank)):
                m.d.sync += [c.eq(c + d) for c, d in zip(counters[bank], deltas)]

        # Count, three stages per lane. A value taken is registered first (``taken_key``): the
        # key addresses every bin of both banks' histograms, a fan-out that must start at a
        # register of its own beside them, not at the drain in front of this unit. The next
        # cycle it reads its bin through a synchronous port; a cycle later the bin is written
        # with its count + 1, so no memory read lies on the path into the count written. A
        # lane's value equal to the one before it read its bin while that count was being
        # written, so it takes the count written instead (``repeat``). The last beat's counts
        # are written two cycles after its bank passes to the drain side, whose scan reads no
        # fine bin before three cycles later.
        taken = [Signal(name=f"taken{lane}") for lane in range(width)]
        taken_key = [Signal(bits, name=f"taken_key{lane}") for lane in range(width)]
        taken_bank = Signal()
        counting = [Signal(name=f"counting{lane}") for lane in range(width)]
        counting_key = [Signal(bits, name=f"counting_key{lane}") for lane in range(width)]
        repeat = [Signal(name=f"repeat{lane}") for lane in range(width)]
        written = [Signal(count_shape, name=f"written{lane}") for lane in range(width)]
        counting_bank = Signal()
        m.d.sync += [taken_bank.eq(fill_bank), counting_bank.eq(taken_bank)]
        for lane in range(width):
            m.d.sync += [taken[lane].eq(fill & fill_valid[lane]),
                         taken_key[lane].eq(key(beat.values[lane])),
                         counting[lane].eq(taken[lane]),
                         counting_key[lane].eq(taken_key[lane]),
                         repeat[lane].eq(counting[lane] & (counting_bank == taken_bank)
                                         & (counting_key[lane] == taken_key[lane]))]

        # Emit pass state: the buffer word on the read port waits for the emitter.
        reading = Signal()
        read_word = Signal(range(words))
        pending = Signal()
        pending_last = Signal()
        issue = Signal()

        # The fine scan's bin ``Cat(fine_at, found_coarse)``, held by each bank in a register of
        # its own (only the draining bank's follows the scan), so one register drives the read
        # address of half the lane histograms.
        fine_addr = [Signal(bits, name=f"fine_addr{bank}") for bank in range(2)]
        lane_reads, buffers_read, count_reads = [[], []], [], [[], []]
        clear_addr = [Signal(bits, name=f"clear{lane}") for lane in range(width)]
        clear_en = Signal()
        for bank in range(2):
            buffer = Memory(shape=data.ArrayLayout(value_shape(frac), width), depth=words,
                            init=[])
            m.submodules[f"buffer{bank}"] = buffer
            buf_w, buf_r = buffer.write_port(), buffer.read_port()
            mine = fill_bank == bank
            m.d.comb += [buf_w.addr.eq(fill_word), buf_w.data.eq(beat.values),
                         buf_w.en.eq(fill & mine), buf_r.addr.eq(read_word),
                         buf_r.en.eq(issue & (drain_bank == bank))]
            buffers_read.append(buf_r.data)
            for lane in range(width):
                # Distributed RAM: its reads are asynchronous behind the read registers, where
                # block RAM's slow output would start the paths into the sum and the count + 1.
                hist = Memory(shape=count_shape, depth=1 << bits, init=[],
                              attrs={"ram_style": "distributed"})
                m.submodules[f"hist{bank}_{lane}"] = hist
                # The fine scan and the count each read through a synchronous port of their own.
                hist_w, hist_r, count_r = hist.write_port(), hist.read_port(), hist.read_port()
                m.d.comb += [hist_r.addr.eq(fine_addr[bank]),
                             count_r.addr.eq(taken_key[lane])]
                lane_reads[bank].append(hist_r.data)
                count_reads[bank].append((hist_w, count_r.data))
        # Each write port's choice comes from registers: whether the lane counts into this bank
        # (``count_into``, decided a stage ahead) or else writes a zero, the wipe after reset or
        # the emit's clear, both registered a cycle before they reach the memory
        # (``zero_addr``, ``zero_en``). The choice drives the address of every bin of the bank,
        # and its fan-out, not the logic in front of it, is the longest path into the memory.
        # A delayed clear is harmless: a bank cleared by the emit is counted into again no
        # earlier than two cycles after its release, and the fill waits for the wipe.
        count_into = [[Signal(name=f"count_into{bank}_{lane}") for lane in range(width)]
                      for bank in range(2)]
        zero_addr = [Signal(bits, name=f"zero_addr{lane}") for lane in range(width)]
        zero_en = [Signal(name=f"zero_en{bank}") for bank in range(2)]
        for bank in range(2):
            m.d.sync += zero_en[bank].eq(wiping | (clear_en & full[bank] & (drain_bank == bank)))
        for lane in range(width):
            counted = Mux(repeat[lane], written[lane],
                          Mux(counting_bank, count_reads[1][lane][1], count_reads[0][lane][1])) + 1
            m.d.sync += [written[lane].eq(counted),
                         zero_addr[lane].eq(Mux(wiping, wipe_at, clear_addr[lane]))]
            for bank in range(2):
                hist_w, count_read = count_reads[bank][lane]
                m.d.sync += count_into[bank][lane].eq(taken[lane] & (taken_bank == bank))
                # A bank is written a count only while it is the counting bank, so its own
                # read (or the repeat's) + 1 is ``counted``: no choice of bank on the path
                # into the memory (the scaled network's critical path on the ECP5 with it).
                into_bank = Mux(repeat[lane], written[lane], count_read) + 1
                m.d.comb += [
                    hist_w.addr.eq(Mux(count_into[bank][lane], counting_key[lane], zero_addr[lane])),
                    hist_w.data.eq(Mux(count_into[bank][lane], into_bank, 0)),
                    hist_w.en.eq(count_into[bank][lane] | zero_en[bank])]

        # The scan: each cycle selects one count into ``picked``; the next compares it.
        coarse_count = Mux(drain_bank, Cat(*counters[1]).word_select(coarse_at, count_shape.width),
                           Cat(*counters[0]).word_select(coarse_at, count_shape.width))
        # The fine level takes a stage more: the lanes' bins are read through the synchronous
        # ports (``read_bin``, ``read_valid``), and a cycle later their sum is picked, so the
        # deep histogram read, the bank's choice and the adder are not one path.
        fine_read = [Mux(drain_bank, lane_reads[1][lane], lane_reads[0][lane])
                     for lane in range(width)]
        read_bin, read_valid = Signal(fine_bits), Signal()
        fine_count = fine_read[0]
        for lane_count in fine_read[1:]:
            fine_count = fine_count + lane_count
        found = picked_valid & (picked >= need)
        with m.Switch(state):
            with m.Case(0):
                with m.If(full.bit_select(drain_bank, 1)):
                    m.d.sync += [state.eq(1), coarse_at.eq(-1), need.eq(k), picked_valid.eq(0)]
            with m.Case(1):
                m.d.sync += [picked.eq(coarse_count), picked_bin.eq(coarse_at),
                             picked_valid.eq(1), coarse_at.eq(coarse_at - 1)]
                # The lowest bin holds every remaining value of a well-formed input.
                # The fine scan's first bin if ``picked_bin`` is the one found (the address is
                # unused until then, so it does not wait for the compare).
                for bank in range(2):
                    with m.If(drain_bank == bank):
                        m.d.sync += fine_addr[bank].eq(Cat(Const(-1, fine_bits),
                                                           picked_bin[:coarse_bits]))
                with m.If(found | (picked_valid & (picked_bin == 0))):
                    m.d.sync += [state.eq(2), found_coarse.eq(picked_bin), fine_at.eq(-1),
                                 picked_valid.eq(0)]
                with m.Elif(picked_valid):
                    m.d.sync += need.eq(need - picked)
            with m.Case(2):
                for bank in range(2):
                    with m.If(drain_bank == bank):
                        m.d.sync += fine_addr[bank][:fine_bits].eq(fine_at - 1)
                m.d.sync += [read_bin.eq(fine_at), read_valid.eq(1), fine_at.eq(fine_at - 1),
                             picked.eq(fine_count), picked_bin.eq(read_bin),
                             picked_valid.eq(read_valid)]
                with m.If(found | (picked_valid & (picked_bin[:fine_bits] == 0))):
                    m.d.sync += [state.eq(3), threshold.eq(Cat(picked_bin[:fine_bits],
                                                               found_coarse)),
                                 ties.eq(need), reading.eq(1), read_word.eq(0),
                                 picked_valid.eq(0), read_valid.eq(0)]
                with m.Elif(picked_valid):
                    m.d.sync += need.eq(need - picked)

        # Emit: one buffered word per cycle into the emitter, winners masked.
        m.submodules.emitter = emitter = PositionEmitter((width, 1, words), self._skip)
        stored = Mux(drain_bank, buffers_read[1], buffers_read[0])
        stored = data.View(data.ArrayLayout(value_shape(frac), width), stored)
        pending_valid = lane_valid(pending_last)
        keys = [key(stored[lane]) for lane in range(width)]
        tie = [pending_valid[lane] & (keys[lane] == threshold) for lane in range(width)]
        win = []
        for lane in range(width):
            earlier = count_ones(tie[:lane]) if lane else Const(0, 1)
            win.append(pending_valid[lane]
                       & ((keys[lane] > threshold) | (tie[lane] & (earlier < ties))))
        taken_ties = count_ones([t & w for t, w in zip(tie, win)])
        word = emitter.i.payload
        m.d.comb += [emitter.i.valid.eq(pending), word.last.eq(pending_last),
                     word.mask.eq(Cat(*(win if self._skip else pending_valid)))]
        for lane in range(width):
            m.d.comb += word.values[lane].eq(Mux(win[lane], round_fraction(stored[lane], frac), 0))
        accept = pending & emitter.i.ready
        m.d.comb += [issue.eq(reading & (~pending | accept)), clear_en.eq(accept),
                     release.eq(accept & pending_last)]
        m.d.comb += [clear_addr[lane].eq(keys[lane]) for lane in range(width)]
        with m.If(accept):
            m.d.sync += [ties.eq(ties - taken_ties), pending.eq(0)]
        with m.If(issue):
            m.d.sync += [pending.eq(1), pending_last.eq(read_word == words - 1),
                         read_word.eq(read_word + 1)]
            with m.If(read_word == words - 1):
                m.d.sync += reading.eq(0)
        with m.If(release):
            m.d.sync += [full.bit_select(drain_bank, 1).eq(0), drain_bank.eq(~drain_bank),
                         state.eq(0)]

        # Coordinates (c = lane, x = word) back to the flat index.
        out = emitter.o.payload
        m.d.comb += [self.o.valid.eq(emitter.o.valid), emitter.o.ready.eq(self.o.ready),
                     self.o.payload.value.eq(out.value), self.o.payload.last.eq(out.last),
                     self.o.payload.index.eq(out.x * width + out.c)]
        return m
