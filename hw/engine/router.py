"""Routing network and double-buffered, banked accumulators.

Lane ``l`` of pass ``q`` serves group ``g = q * lanes + l``; its product
belongs to kernel ``j`` (the kernel id) of that group. The accumulators of
one output position and pass are one memory word of ``lanes x n`` sums
(lane-major, kernel inside). All the lanes of one item work on the same
position, so the item reads that word and each lane writes back only its
kernel's sum, plus its product: the write port has one enable per sum
(``granularity = acc_bits``, which synthesis maps to block-RAM byte-wide
write enables), so no lane needs a word-wide write-back multiplexer and the
lanes never collide. The ``banks`` of :mod:`.tiling` hold disjoint sets of
positions and take one word write each per cycle, which is what lets a tile
of kernel offsets be accumulated at once.

Every memory has exactly one synchronous read port and one write port, the
shape of a simple-dual-port block RAM (RAMB18E2/RAMB36E2, URAM288) as well as
of distributed RAM, so synthesis picks by size rather than being forced into
flip-flops or multi-ported LUT RAM.

Accumulation is a read-modify-write over two cycles: the item's word is read,
and in the next cycle each lane's sum plus its product is written. The write
of item ``i - 1`` lands in the cycle item ``i`` reads, so when both hit the
same sum (same bank entry and kernel id in the lane) item ``i`` takes the
sum that item ``i - 1`` is writing instead of the one read (forwarding: one
address comparison per bank and one kernel comparison and multiplexer per
lane), so consecutive activations on one sum are neither lost nor counted
twice.

Every bank exists twice: while one buffer accumulates an input, the drain
reads (and clears to zero) the other, so a new input never waits for the
previous one's outputs to leave. The buffers take turns with the same ports:
the read port serves the read-modify-write of the accumulating buffer and the
drain's reads of the other, the write port the updates and the drain's
clears. A drain read returns every sum of one position and pass, ``lanes x
n`` output channels, one cycle after it is issued; the read port holds the
word while the drain issues no read.

A conv engine whose input arrives position-major keeps one buffer only,
a ring of output rows (``buffers = 1``, :mod:`.ring`): the drain reads
(and clears) the rows that are final while later rows still accumulate, so
it takes a bank's read port only in a cycle in which the read-modify-write
does not read that bank (``free``); its clear then lands in the next cycle,
when no update writes that bank either. Read-modify-write reads overwrite
the read port's word, so a register holds the drained word while the drain
waits.

Why whole words and no ``Array`` indexing: Verilator, which the benches
use, evaluates every memory port and every expression every cycle.
Selecting a lane's sum by its kernel id and the drained bank by its number
with an ``Array`` became shifts of whole ~1,400-bit words by a variable
amount (the default network's conv2 accumulators alone then cost 226 us a
cycle and 636 s to compile); masked ORs of constant slices (:func:`pick`)
do not.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .multiply import bits, product_bits, product_layout

__all__ = ["DrainPort", "Accumulators", "SumPort", "LaneAccumulators", "LANE_LATENCY",
           "check_acc_bits", "pick"]

#: Cycles from an item at :class:`LaneAccumulators`' input to its write (``done``):
#: the read, the selection of the sum read or a forwarded one, the add and write.
LANE_LATENCY = 2


def _slot(word, index, acc_bits):
    """Sum ``index`` of a memory word."""
    return word[index * acc_bits:(index + 1) * acc_bits].as_signed()


def pick(options, index):
    """``options[index]``, as an OR of the options masked by ``index == position``.

    The same logic as indexing an :class:`~amaranth.Array`, but every option
    stays a constant slice: an ``Array`` of slices of one wide word becomes
    a shift of the whole word by a variable amount, and a chain of
    multiplexers of wide words is re-evaluated for every bit slice read from
    it, both of which a cycle-based simulator pays for every cycle.
    """
    picked = Mux(index == 0, options[0], 0)
    for position in range(1, len(options)):
        picked = picked | Mux(index == position, options[position], 0)
    return picked


def check_acc_bits(acc_bits: int, weight_bits: int) -> None:
    """ValueError unless ``acc_bits`` holds one product of ``weight_bits``-bit weights and a sign."""
    need = product_bits(weight_bits) + 1
    if acc_bits < need:
        raise ValueError(f"acc_bits = {acc_bits} cannot hold a product of {weight_bits}-bit "
                         f"weights and a sign (needs >= {need})")


class DrainPort(wiring.Signature):
    """The drain's view of the idle buffer: read (and clear) one word of one bank.

    ``addr``/``bank``/``en`` drive the read (``en`` low holds ``data``);
    when ``clear`` is high with ``en``, the word read is set to zero on the
    next cycle, leaving the buffer ready for a later input. ``data`` holds
    the word's ``lanes x n`` sums one cycle after the read, sum
    ``l * n + j`` being kernel ``j`` of lane ``l``. ``free`` is high when a
    read of ``bank`` may be issued this cycle (always, double-buffered).
    """

    def __init__(self, sums: int, banks: int, depth: int, acc_bits: int):
        super().__init__({
            "addr": Out(unsigned(bits(depth))),
            "bank": Out(unsigned(bits(banks))),
            "en": Out(1),
            "clear": Out(1),
            "free": In(1),
            "data": In(data.ArrayLayout(signed(acc_bits), sums)),
        })


class Accumulators(wiring.Component):
    """Banked accumulators, double-buffered or one ring, fed by :class:`PackedMultiply`.

    Parameters
    ----------
    n : int
        Kernels per packed group.
    lanes : int
        Groups per item.
    tiling : Tiling
        Banks and their depth.
    acc_bits : int
        Signed accumulator width, at least ``product_bits(weight_bits) + 1``
        (17 for 8-bit weights: an int8 x int8 product and a sign).
    weight_bits : int
        Width of the layer's weights (2..16), which sets the product width
        of the input stream (:func:`~.multiply.product_layout`).
    buffers : int
        2: double-buffered (``sel`` picks the accumulating buffer); 1: one
        ring, drained in the cycles the read-modify-write leaves a bank free.

    Ports
    -----
    i : products, always accepted.
    sel : which buffer accumulates; the other belongs to ``drain`` (unused with one buffer).
    done : high in the cycle the item marked ``last`` is written.
    drain : :class:`DrainPort` into the other buffer (the ring).
    """

    def __init__(self, n: int, lanes: int, tiling, acc_bits: int, weight_bits: int = 8,
                 buffers: int = 2):
        for name, value in (("n", n), ("lanes", lanes), ("acc_bits", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if buffers not in (1, 2):
            raise ValueError(f"buffers must be 1 (a ring) or 2, got {buffers!r}")
        check_acc_bits(acc_bits, weight_bits)
        self._n, self._lanes, self._tiling, self._acc_bits = n, lanes, tiling, acc_bits
        self._buffers = buffers
        super().__init__({
            "i": In(stream.Signature(product_layout(n, lanes, tiling, weight_bits),
                                     always_ready=True)),
            "sel": In(1),
            "done": Out(1),
            "drain": In(DrainPort(lanes * n, tiling.banks, tiling.depth, acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        n, lanes, t, acc_bits = self._n, self._lanes, self._tiling, self._acc_bits
        sums = lanes * n
        # Read-modify-write stage: the item whose words were read last cycle.
        s_valid = Signal()
        s = Signal(self.i.payload.shape())
        m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]
        m.d.comb += self.done.eq(s_valid & s.last)
        # The item written last cycle and its new sums: its write lands after this item's
        # words were read, so a hit on one of its sums takes the sum from here (forwarding).
        p_valid = Signal()
        p = Signal(self.i.payload.shape())
        p_total = Signal(data.ArrayLayout(data.ArrayLayout(signed(acc_bits), lanes), t.banks))
        m.d.sync += [p_valid.eq(s_valid), p.eq(s)]

        # Clears follow the drain's reads by one cycle (the drain's read port holds the word).
        c_en, c_addr = Signal(), Signal.like(self.drain.addr)
        c_bank, d_bank = Signal.like(self.drain.bank), Signal.like(self.drain.bank)
        m.d.sync += [c_en.eq(self.drain.en & self.drain.clear), c_addr.eq(self.drain.addr),
                     c_bank.eq(self.drain.bank)]
        with m.If(self.drain.en):
            m.d.sync += d_bank.eq(self.drain.bank)
        buffers = self._buffers
        if buffers == 2:
            m.d.comb += self.drain.free.eq(1)
        else:
            # The drain may read a bank the item being read now leaves alone.
            writes = [self.i.payload.write[b] for b in range(t.banks)]
            busy = pick(writes, self.drain.bank) if t.banks > 1 else writes[0]
            m.d.comb += self.drain.free.eq(~(self.i.valid & busy))

        drained = []
        for b in range(t.banks):
            # One memory per bank and buffer, one port each way: a synchronous read port
            # (read-modify-write while the buffer accumulates, drain while it is drained)
            # and a write port with one enable per sum (update, or clear after a drain read).
            # A word holds the lanes x n sums of one position and pass, sum i in bits
            # [acc_bits * i, acc_bits * (i + 1)).
            mems = []
            for buf in range(buffers):
                mem = Memory(shape=unsigned(sums * acc_bits), depth=t.depth, init=[])
                m.submodules[f"bank{b}_{buf}"] = mem
                mems.append((mem.read_port(), mem.write_port(granularity=acc_bits)))
            hit_addr = p_valid & p.write[b] & (p.addr[b] == s.addr[b])
            totals, enables = [], []
            for lane in range(lanes):
                kernel = s.kernel[b][lane]
                # The lane's sum from the accumulating buffer (a 2n-way pick by buffer and
                # kernel id), or the previous item's new value of that very sum.
                options = [_slot(mems[buf][0].data, lane * n + j, acc_bits) if j < n else 0
                           for buf in range(buffers) for j in range(1 << len(kernel))]
                old = Mux(hit_addr & (p.kernel[b][lane] == kernel), p_total[b][lane],
                          pick(options, Cat(kernel, self.sel) if buffers == 2 else kernel))
                total = Signal(signed(acc_bits), name=f"sum{b}_{lane}")
                m.d.comb += total.eq(old + s.product[b][lane])
                m.d.sync += p_total[b][lane].eq(total)
                totals += [total] * n
                enables += [kernel == j for j in range(n)]
            writing = s_valid & s.write[b]
            # Reads only for items that write the bank: an idle port costs a simulator nothing.
            reading = self.i.valid & self.i.payload.write[b]
            clearing = c_en & (c_bank == b)
            if buffers == 1:
                # The drain reads only where no item reads (``free``), and its clear lands
                # when the item read with it, which leaves this bank alone, writes.
                (read, write), = mems
                draining = self.drain.en & (self.drain.bank == b)
                m.d.comb += [
                    read.addr.eq(Mux(draining, self.drain.addr, self.i.payload.addr[b])),
                    read.en.eq(reading | draining),
                    write.addr.eq(Mux(clearing, c_addr, s.addr[b])),
                    write.data.eq(Mux(clearing, 0, Cat(*totals))),
                    write.en.eq(Mux(clearing, (1 << sums) - 1, Mux(writing, Cat(*enables), 0))),
                ]
                drained.append(read.data)
                continue
            for buf, (read, write) in enumerate(mems):
                accumulating = self.sel == buf
                m.d.comb += [
                    read.addr.eq(Mux(accumulating, self.i.payload.addr[b], self.drain.addr)),
                    read.en.eq(Mux(accumulating, reading, self.drain.en)),
                    write.addr.eq(Mux(accumulating, s.addr[b], c_addr)),
                    write.data.eq(Mux(accumulating, Cat(*totals), 0)),
                    write.en.eq(Mux(accumulating, Mux(writing, Cat(*enables), 0),
                                    Mux(clearing, (1 << sums) - 1, 0))),
                ]
            drained.append(Mux(self.sel, mems[0][0].data, mems[1][0].data))
        # The drained buffer's word of the bank read last (the read ports hold it while the
        # drain does not read).
        word = pick(drained, d_bank) if t.banks > 1 else drained[0]
        if buffers == 1:
            # Later reads of the read-modify-write replace the read port's word: hold it.
            fresh, held = Signal(), Signal.like(word)
            m.d.sync += fresh.eq(self.drain.en)
            with m.If(fresh):
                m.d.sync += held.eq(word)
            word = Mux(fresh, word, held)
        for index in range(sums):
            m.d.comb += self.drain.data[index].eq(_slot(word, index, acc_bits))
        return m


class SumPort(wiring.Signature):
    """The linear drain's view of the idle buffer: read (and clear) one word of one lane.

    Sum ``j`` of pass ``q`` in lane ``lane`` (channel ``(q * lanes + lane) * n + j``)
    is at ``addr = q * n + j``. ``en`` reads it (``en`` low holds ``data``); with
    ``clear`` it is set to zero on the next cycle. ``data`` holds the sum one
    cycle after the read. With ``width > 1`` a read yields ``width`` sums, the
    ``j``-consecutive sums ``addr * width + e``: ``addr`` counts groups of
    ``width`` (``depth / width`` of them) and ``data`` is an array of ``width`` sums.
    """

    def __init__(self, lanes: int, depth: int, acc_bits: int, width: int = 1):
        super().__init__({
            "addr": Out(unsigned(bits(depth // width))),
            "lane": Out(unsigned(bits(lanes))),
            "en": Out(1),
            "clear": Out(1),
            "data": In(signed(acc_bits) if width == 1
                       else data.ArrayLayout(signed(acc_bits), width)),
        })


class LaneAccumulators(wiring.Component):
    """Double-buffered accumulators of a linear engine: memories of single sums per lane.

    A linear layer has a single output "position", so its sums are few
    (``passes x lanes x n``) and the words of :class:`Accumulators` would be
    very wide and very shallow (``lanes x n`` sums deep ``passes``: fc1 of the
    default network, 220 sums by 7). Here each lane owns memories of single
    sums, sum ``j`` of pass ``q`` at ``q * n + j``: a lane's product reads and
    writes exactly the sum of its kernel id, with no selection among the
    lane's sums and no write enables, and the drain, which emits one channel
    per cycle, reads exactly the channel it needs. Each memory has one
    synchronous read port and one write port (the form of block or
    distributed RAM), shared by the buffers' two roles as in
    :class:`Accumulators`.

    With ``width > 1`` (a wide drain, :class:`~.drain.ChannelDrain` of that
    ``width``) the sums of a lane are spread over ``width`` memories, sum ``s``
    (``q * n + j``) in memory ``s % width`` at ``s // width`` (``width``
    divides ``n``), so the drain reads ``width`` consecutive channels of one
    lane in a cycle, one from each, and an update writes only its own sum's
    memory. (One memory of ``width``-sum words needs a write enable per sum,
    ``acc_bits`` wide, which block RAM's 8/9-bit byte enables do not offer.)

    The read-modify-write is a three-stage pipeline, so that no path holds
    the memory read, the selection of the sum and the adder at once (in one
    cycle they made the default's fc1 engine 9 UltraScale+ logic levels deep;
    docs/hardware.md): the item's sum is read (``read``), the sum read (or a
    newer one, below) is selected and registered (``select``), and the
    product is added and written (``add``). A sum written by the item one
    ahead lands after this item's read, and the one written two ahead lands
    in the cycle of the read, which does not see it either, so the newer
    sums are forwarded: in ``select``, the item two ahead's sum (just
    written, held in a register) replaces the one read when both hit the same
    sum; in ``add``, the item one ahead's sum, the adder's output of the
    cycle before, replaces the selected one when they hit the same sum
    (it takes precedence, being the newer). Consecutive activations on one
    sum are so neither lost nor counted twice.

    Parameters
    ----------
    n, lanes, tiling, acc_bits, weight_bits :
        As for :class:`Accumulators`; ``tiling`` must have one bank.
    width : int
        Sums the drain reads from a lane per cycle, a divisor of ``n``.

    Ports
    -----
    i, sel, done :
        As for :class:`Accumulators`; ``done`` is high in the cycle the item
        marked ``last`` is added and written, :data:`LANE_LATENCY` cycles after
        it arrived.
    drain : :class:`SumPort` into the other buffer.
    """

    def __init__(self, n: int, lanes: int, tiling, acc_bits: int, weight_bits: int = 8,
                 width: int = 1):
        for name, value in (("n", n), ("lanes", lanes), ("acc_bits", acc_bits),
                            ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if n % width:
            raise ValueError(f"width = {width} must divide n = {n}")
        if tiling.banks != 1:
            raise ValueError(f"lane accumulators take a single-bank tiling, got {tiling.banks} "
                             f"banks")
        check_acc_bits(acc_bits, weight_bits)
        self._n, self._lanes, self._tiling, self._acc_bits = n, lanes, tiling, acc_bits
        self._width = width
        super().__init__({
            "i": In(stream.Signature(product_layout(n, lanes, tiling, weight_bits),
                                     always_ready=True)),
            "sel": In(1),
            "done": Out(1),
            "drain": In(SumPort(lanes, tiling.depth * n, acc_bits, width)),
        })

    def elaborate(self, platform):
        m = Module()
        n, lanes, acc_bits, width = self._n, self._lanes, self._acc_bits, self._width
        depth = self._tiling.depth * n
        item = self.i.payload
        # The pipeline's stages after ``read``: valid, writing (an item of a bank-less pass
        # writes nothing) and last, per stage; ``written`` is the item added last cycle.
        r_valid, a_valid = Signal(), Signal()
        r_write, a_write, w_write = Signal(), Signal(), Signal()
        r_last, a_last = Signal(), Signal()
        m.d.sync += [r_valid.eq(self.i.valid), a_valid.eq(r_valid),
                     r_write.eq(self.i.valid & item.write[0]), a_write.eq(r_write),
                     w_write.eq(a_write), r_last.eq(item.last), a_last.eq(r_last)]
        m.d.comb += self.done.eq(a_valid & a_last)
        # Clears follow the drain's reads by one cycle (the drain's read port holds the sum).
        c_en, c_addr = Signal(), Signal.like(self.drain.addr)
        c_lane, d_lane = Signal.like(self.drain.lane), Signal.like(self.drain.lane)
        m.d.sync += [c_en.eq(self.drain.en & self.drain.clear), c_addr.eq(self.drain.addr),
                     c_lane.eq(self.drain.lane)]
        with m.If(self.drain.en):
            m.d.sync += d_lane.eq(self.drain.lane)
        slot_bits = bits(width) if width > 1 else 0
        drained = [[] for _ in range(width)]
        for lane in range(lanes):
            # The sum this lane's product goes to, ``Cat(slot, entry)``: its memory (width 1:
            # none) and its entry there, per stage.
            addr = Signal(unsigned(bits(depth // width) + slot_bits), name=f"addr{lane}")
            r_addr, a_addr, w_addr = (Signal.like(addr, name=f"{stage}_addr{lane}")
                                      for stage in "raw")
            r_product, a_product = (Signal.like(item.product[0][lane],
                                                name=f"{stage}_product{lane}")
                                    for stage in "ra")
            kernel = item.kernel[0][lane]
            if width == 1:
                m.d.comb += addr.eq(item.addr[0] * n + kernel)
            else:
                kernels = range(1 << len(kernel))
                slot = Array(Const(j % width, slot_bits) for j in kernels)[kernel]
                entry = Array(Const(j // width, bits(n)) for j in kernels)[kernel]
                m.d.comb += addr.eq(Cat(slot, item.addr[0] * (n // width) + entry))
            m.d.sync += [r_addr.eq(addr), a_addr.eq(r_addr), w_addr.eq(a_addr),
                         r_product.eq(item.product[0][lane]), a_product.eq(r_product)]
            # mems[buf][e]: (read port, write port) of buffer ``buf``'s memory ``e``.
            mems = []
            for buf in range(2):
                ports = []
                for e in range(width):
                    mem = Memory(shape=signed(acc_bits), depth=depth // width, init=[])
                    m.submodules[f"lane{lane}_{buf}" + (f"_{e}" if width > 1 else "")] = mem
                    ports.append((mem.read_port(), mem.write_port()))
                mems.append(ports)
            # select: the sum read from the accumulating buffer, or the sum written last cycle
            # (the item two ahead) if it is the same one; and whether the item one ahead, now
            # in add, hits it too.
            read = [mems[buf][e][0].data if e < width else 0
                    for buf in range(2) for e in range(1 << slot_bits)]
            word = pick(read, Cat(r_addr[:slot_bits], self.sel)) if width > 1 else \
                Mux(self.sel, read[1], read[0])
            a_old = Signal(signed(acc_bits), name=f"old{lane}")
            a_ahead = Signal(name=f"ahead{lane}")
            total, w_total = Signal(signed(acc_bits), name=f"sum{lane}"), \
                Signal(signed(acc_bits), name=f"written{lane}")
            m.d.sync += [a_old.eq(Mux(w_write & (w_addr == r_addr), w_total, word)),
                         a_ahead.eq(a_write & (a_addr == r_addr))]
            # add: the selected sum, or the one the item one ahead has just written, plus the
            # product.
            m.d.comb += total.eq(Mux(a_ahead, w_total, a_old) + a_product)
            m.d.sync += w_total.eq(total)
            clearing = c_en & (c_lane == lane)
            for buf in range(2):
                accumulating = self.sel == buf
                for e, (read_port, write_port) in enumerate(mems[buf]):
                    mine = a_addr[:slot_bits] == e if width > 1 else 1
                    m.d.comb += [
                        read_port.addr.eq(Mux(accumulating, addr[slot_bits:], self.drain.addr)),
                        read_port.en.eq(Mux(accumulating, self.i.valid & item.write[0],
                                            self.drain.en & (self.drain.lane == lane))),
                        write_port.addr.eq(Mux(accumulating, a_addr[slot_bits:], c_addr)),
                        write_port.data.eq(Mux(accumulating, total, 0)),
                        write_port.en.eq(Mux(accumulating, a_write & mine, clearing)),
                    ]
            for e in range(width):
                drained[e].append(Mux(self.sel, mems[0][e][0].data, mems[1][e][0].data))
        sums = [pick(lane_sums, d_lane) if lanes > 1 else lane_sums[0] for lane_sums in drained]
        if width == 1:
            m.d.comb += self.drain.data.eq(sums[0])
        else:
            m.d.comb += [self.drain.data[e].eq(sums[e]) for e in range(width)]
        return m
