"""Global k-WTA: the k largest values of a whole tensor, by histogram threshold.

Sorting a whole layer is costly; but its values are int8, so a 256-bin
histogram built while the values arrive says everything a selection needs.
Scanning it from the top finds the threshold ``T`` with
``count(> T) < k <= count(>= T)``, and ``t = k - count(> T)``: the winners are
every value above ``T`` and the first ``t`` values equal to ``T`` in flat
order (docs/netspec.md's lower-index tie rule). A second pass over the
buffered tensor in flat order then emits exactly those.

Two banks (value buffer + histogram) alternate, so one input fills a bank
while the previous one is scanned and emitted from the other. The scan
clears each bin as it reads it, so a bank's histogram is zero again when the
bank is handed back to the input side.

Fraction bits (NetSpec version 2): when the requantisation before the
k-WTA keeps ``f = frac_bits`` extra fraction bits, the values are
``signed(8 + f)`` and the selection must be made on them, so the histogram
has one bin per ``(8 + f)``-bit value, ``2**(8 + f)`` bins (:func:`bins`),
and the buffers hold ``8 + f`` bits; the winners leave rounded half up to
int8 (a winner that rounds to 0 is dropped like any zero). The price is the
scan, one cycle per bin: ``2**(8 + f) + S + 1`` cycles per input instead of
``S + 257`` (1,024 bins for ``f = 2``, 4,096 for ``f = 4``, 65,536 for
``f = 8``, where the scan dominates any layer size this unit serves), and
histograms that deep (``2**(8+f) x ceil_log2(S+1)`` bits each, block RAM
rather than distributed RAM beyond a few thousand bins; both read ports are
synchronous, so either maps). A finer selection therefore costs
throughput roughly in proportion to ``2**f``. A linear engine with a wide
drain (config ``width > 1``) is followed instead by
:class:`~.global_wide.GlobalWideKWTA`: ``width`` values a cycle and a
two-level histogram (coarse bins, then the fine bins of the threshold's
coarse bin).
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layouts import check_frac_bits, dense_layout, sparse_layout, tensor_size, value_shape
from ..sparsify import ORDERS, Compactor, CoordinateCounter
from .local import _check_kwta, round_fraction

__all__ = ["GlobalKWTA", "bins", "scan_cycles"]


def bins(frac_bits: int = 0) -> int:
    """Histogram bins: one per ``8 + frac_bits`` bit value, ``2**(8 + frac_bits)``."""
    return 1 << (8 + check_frac_bits(frac_bits))


def scan_cycles(size: int, frac_bits: int = 0) -> int:
    """Cycles per input in a stream (output never stalled): one per bin scanned, one per
    buffered value emitted and one to start the read, ``2**(8 + f) + S + 1``
    (``S + 257`` for int8); the next input's fill overlaps them."""
    return bins(frac_bits) + size + 1


class GlobalKWTA(wiring.Component):
    """Keep the ``k`` largest values of each input tensor, as a sparse stream.

    Parameters
    ----------
    shape : tuple
        ``(F,)`` or ``(C, H, W)``; ``S = prod(shape)`` values compete.
    k : int
        Winners per input, ``1 <= k <= S``.
    skip_zeros : bool
        True: emit the non-zero winners (a winner of value 0 contributes
        nothing). False (dense baseline): emit all ``S`` values, losers as 0.
    order : str
        Order of a 3-D input: ``"position_major"`` (default: the engines'
        dense output, hw/layouts.py) or ``"flat"`` (``(c, y, x)``). A 1-D
        input is flat.
    frac_bits : int
        Fraction bits of the input values, 0..8 (the NetSpec k-WTA's
        ``frac_bits``): they are ``signed(8 + frac_bits)``, selected with a
        ``2**(8 + frac_bits)``-bin histogram and rounded half up to int8 on
        the way out.

    Ports
    -----
    i : ``In(stream.Signature(dense_layout(value_shape(frac_bits))))``
        ``value`` (signed(8 + frac_bits)) and ``last`` on the final value of an input,
        which must have exactly ``S`` beats (not checked: the histogram then
        describes a different tensor and the winners are unspecified, but
        each input still yields one closed output).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        The int8 winners in ascending flat index, with ``index`` or ``c, y,
        x``, ``last`` on the final one; an input without a non-zero winner
        is the single value-0 beat.

    Cycles: ``S`` to take an input; ``B + S + 1`` to scan and emit it, with
    ``B = 2**(8 + frac_bits)`` bins (one cycle per bin, one per value, one
    to start the read), overlapped with the next input's fill, so
    :func:`scan_cycles` ``= B + S + 1`` per input in a stream when the output
    is never stalled (``S + 257`` for int8), and about ``2*S + B + 5`` from
    an input's first value to its final output.
    Memory: two ``S x (8 + frac_bits)`` buffers (block RAM), two
    ``B x ceil_log2(S+1)`` histograms. Every memory read is synchronous and
    the count and the scan are two-stage pipelines (read, then add or
    compare), so no path runs from a memory read through an adder or a
    compare into a register's clock enable (the ECP5 critical path once);
    the pipelining adds one cycle of latency, none per input.
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True,
                 order: str = "position_major", frac_bits: int = 0):
        _check_kwta(shape, k, skip_zeros, dims=(1, 3))
        size = tensor_size(shape)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= size:
            raise ValueError(f"k must be an integer in [1, {size}] (the tensor size), got {k!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self._frac = check_frac_bits(frac_bits)
        self._shape, self._k, self._skip = shape, k, skip_zeros
        self._order = order if len(shape) == 3 else "flat"
        super().__init__({"i": In(stream.Signature(dense_layout(value_shape(self._frac)))),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def _flat_address(self, coord):
        if len(self._shape) == 1:
            return coord.index
        _, height, width = self._shape
        return coord.c * (height * width) + coord.y * width + coord.x

    def elaborate(self, platform):
        m = Module()
        size, k = tensor_size(self._shape), self._k
        count_shape = unsigned(size.bit_length())
        m.submodules.compactor = compactor = Compactor(self._shape, self._skip)
        wiring.connect(m, compactor.o, wiring.flipped(self.o))
        m.submodules.fill_counter = fill_at = CoordinateCounter(self._shape, self._order)
        m.submodules.emit_counter = emit_at = CoordinateCounter(self._shape, "flat")

        fill_bank, drain_bank = Signal(), Signal()
        full = Signal(2)  # bank b belongs to the drain side while full[b]
        scanning = Signal(init=1)
        count, shape = bins(self._frac), value_shape(self._frac)
        bin_ = Signal(shape, init=count // 2 - 1)  # the bin read this cycle
        compared = Signal()  # the bin read last cycle is on the read ports' data now
        compared_bin = Signal(shape)
        # Winners still to find at and below ``compared_bin``, k - count(> compared_bin); once
        # ``found``, the number of winners equal to the threshold.
        need = Signal(range(k + 1), init=k)
        found = Signal()
        threshold = Signal(shape)
        ties_taken = Signal(range(k + 1))

        value = self.i.payload.value
        fill = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~full.bit_select(fill_bank, 1)),
                     fill_at.advance.eq(fill), fill_at.restart.eq(fill & self.i.payload.last)]
        with m.If(fill & self.i.payload.last):
            m.d.sync += fill_bank.eq(~fill_bank)

        # Count, two stages: a value taken reads its bin (synchronous read); a cycle later the
        # bin is written with its count + 1. A value equal to the one taken in the cycle before
        # read its bin while that value's count was being written, so it takes the count
        # written instead (``repeat``). The bank passes to the drain side once its last value
        # is counted.
        counting, counting_value = Signal(), Signal(shape)
        counting_bank, counting_last = Signal(), Signal()
        repeat = Signal()
        written = Signal(count_shape)  # the count written in the cycle before
        m.d.sync += [counting.eq(fill), counting_value.eq(value), counting_bank.eq(fill_bank),
                     counting_last.eq(self.i.payload.last),
                     repeat.eq(counting & ~counting_last & (value == counting_value))]
        with m.If(counting & counting_last):
            m.d.sync += full.bit_select(counting_bank, 1).eq(1)

        issue = Signal()  # read the next buffered value this cycle
        reading = Signal()  # values left to read in the emit pass
        ports = []
        for bank in range(2):
            buffer = Memory(shape=shape, depth=size, init=[])
            hist = Memory(shape=count_shape, depth=count, init=[])
            m.submodules[f"buffer{bank}"], m.submodules[f"hist{bank}"] = buffer, hist
            ports.append((buffer.write_port(), buffer.read_port(), hist.write_port(),
                          hist.read_port()))
        bins_read = [hist_r.data for *_, hist_r in ports]
        buffers_read = [buf_r.data for _, buf_r, *_ in ports]
        counted = Mux(repeat, written, Mux(counting_bank, bins_read[1], bins_read[0])) + 1
        m.d.sync += written.eq(counted)
        for bank, (buf_w, buf_r, hist_w, hist_r) in enumerate(ports):
            m.d.comb += [buf_w.addr.eq(self._flat_address(fill_at.coord)), buf_w.data.eq(value),
                         buf_w.en.eq(fill & (fill_bank == bank)),
                         buf_r.addr.eq(self._flat_address(emit_at.coord)), buf_r.en.eq(issue)]
            with m.If(full[bank]):  # the drain side scans and clears the histogram
                m.d.comb += [hist_r.addr.eq(bin_), hist_w.addr.eq(bin_), hist_w.data.eq(0),
                             hist_w.en.eq(scanning & (drain_bank == bank))]
            with m.Else():  # the input side counts
                m.d.comb += [hist_r.addr.eq(value), hist_w.addr.eq(counting_value),
                             hist_w.data.eq(counted),
                             hist_w.en.eq(counting & (counting_bank == bank))]

        # Scan: one bin per cycle, from the largest value (127 * 2**f + 2**f - 1) down to the
        # smallest (-128 * 2**f), in two stages: read bin ``bin_``; a cycle later compare its
        # count with the winners still needed (no adder before the compare: ``need`` counts
        # down). The last bin is compared in the cycle the emit pass issues its first read, one
        # cycle before the first value meets ``threshold``, so the stage costs no cycle.
        in_bin = Mux(drain_bank, bins_read[1], bins_read[0])
        scan_read = scanning & full.bit_select(drain_bank, 1)
        m.d.sync += [compared.eq(scan_read), compared_bin.eq(bin_)]
        with m.If(scan_read):
            m.d.sync += bin_.eq(bin_ - 1)
            with m.If(bin_ == -count // 2):
                m.d.sync += [scanning.eq(0), reading.eq(1)]
        with m.If(compared & ~found):
            with m.If(in_bin >= need):
                m.d.sync += [found.eq(1), threshold.eq(compared_bin)]
            with m.Else():
                m.d.sync += need.eq(need - in_bin)

        # Emit: read the buffer in flat order; one value in flight on the read port.
        held = Signal()
        held_at = Signal(sparse_layout(self._shape))
        held_last = Signal()
        stored = Mux(drain_bank, buffers_read[1], buffers_read[0])
        tie = (stored == threshold) & (ties_taken < need)
        win = (stored > threshold) | tie
        beat = compactor.i.payload
        m.d.comb += [compactor.i.valid.eq(held), beat.eq(held_at),
                     beat.value.eq(Mux(win, round_fraction(stored, self._frac), 0)),
                     beat.last.eq(held_last)]
        sent = compactor.i.valid & compactor.i.ready
        take = ~held | compactor.i.ready
        m.d.comb += [issue.eq(reading & take), emit_at.advance.eq(issue)]
        with m.If(take):
            m.d.sync += [held.eq(reading), held_at.eq(emit_at.coord)]
        with m.If(issue):
            last_read = self._flat_address(emit_at.coord) == size - 1
            m.d.sync += held_last.eq(last_read)
            with m.If(last_read):
                m.d.sync += reading.eq(0)
        with m.If(sent & tie):
            m.d.sync += ties_taken.eq(ties_taken + 1)
        with m.If(sent & held_last):
            m.d.sync += [full.bit_select(drain_bank, 1).eq(0), drain_bank.eq(~drain_bank),
                         scanning.eq(1), need.eq(k), found.eq(0), ties_taken.eq(0)]
        return m
