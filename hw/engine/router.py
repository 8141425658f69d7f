"""Routing network and double-buffered, banked accumulators.

Lane ``l`` of pass ``q`` serves group ``g = q * lanes + l``; its product
belongs to kernel ``j`` (the kernel id) of that group. The accumulators of
one output position and pass are one memory word of ``lanes x n`` sums
(lane-major, kernel inside). All the lanes of one item work on the same
position, so the item's read-modify-write takes the whole word: each lane
replaces its kernel's sum by that sum plus its product, and the word is
written back whole. The lanes touch different sums of the word, so they
never collide. The ``banks`` of :mod:`.tiling` hold disjoint sets of
positions and take one word write each per cycle, which is what lets a tile
of kernel offsets be accumulated at once.

Accumulation is a read-modify-write over two cycles. A word read in the
cycle the previous item's word is written to the same address sees the
written word (the read port is transparent to the write port), and the
write lands before any later read, so consecutive activations on one sum are
neither lost nor counted twice, without a separate forwarding path.

Every bank exists twice: while one buffer accumulates an input, the drain
reads (and clears to zero) the other, so a new input never waits for the
previous one's outputs to leave. A drain read returns every sum of one
position and pass: ``lanes x n`` output channels in one cycle, through a
second, asynchronous read port of each bank (the banks are shallow: one
entry per position and pass of a bank, distributed RAM) into one register
that only a drain read loads. One adder per lane serves both buffers.

Why whole words and no ``Array`` indexing: Verilator, which the benches
use, evaluates every memory port and every expression every cycle. Written
with one enable per sum, selecting a lane's sum by its kernel id and the
drained bank by its number with an ``Array``, these became shifts of whole
~1,400-bit words by a variable amount; the default network's conv2
accumulators alone then cost 226 us a cycle and 636 s to compile. As here
(measured with sums padded to 32 bits, which turned out not to matter):
21 us and 53 s (the unit alone, Verilated, random inputs every cycle, this
2-core machine). The drain's selection
across banks sits behind the register's enable for the same reason: logic
that only feeds an enabled register is evaluated only when it loads.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .multiply import bits, product_bits, product_layout

__all__ = ["DrainPort", "Accumulators"]


def _slot(word, index, acc_bits):
    """Sum ``index`` of a memory word."""
    return word[index * acc_bits:(index + 1) * acc_bits].as_signed()


def _pick(options, index):
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


class DrainPort(wiring.Signature):
    """The drain's view of the idle buffer: read (and clear) one word of one bank.

    ``addr``/``bank``/``en`` drive the read (``en`` low holds ``data``);
    when ``clear`` is high with ``en``, the word read is set to zero on the
    next cycle, leaving the buffer ready for a later input. ``data`` holds
    the word's ``lanes x n`` sums one cycle after the read, sum
    ``l * n + j`` being kernel ``j`` of lane ``l``.
    """

    def __init__(self, sums: int, banks: int, depth: int, acc_bits: int):
        super().__init__({
            "addr": Out(unsigned(bits(depth))),
            "bank": Out(unsigned(bits(banks))),
            "en": Out(1),
            "clear": Out(1),
            "data": In(data.ArrayLayout(signed(acc_bits), sums)),
        })


class Accumulators(wiring.Component):
    """Banked, double-buffered accumulators fed by :class:`PackedMultiply`.

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

    Ports
    -----
    i : products, always accepted.
    sel : which buffer accumulates; the other belongs to ``drain``.
    done : high in the cycle the item marked ``last`` is written.
    drain : :class:`DrainPort` into the other buffer.
    """

    def __init__(self, n: int, lanes: int, tiling, acc_bits: int, weight_bits: int = 8):
        for name, value in (("n", n), ("lanes", lanes), ("acc_bits", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        need = product_bits(weight_bits) + 1
        if acc_bits < need:
            raise ValueError(f"acc_bits = {acc_bits} cannot hold a product of {weight_bits}-bit "
                             f"weights and a sign (needs >= {need})")
        self._n, self._lanes, self._tiling, self._acc_bits = n, lanes, tiling, acc_bits
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
        # Read-modify-write stage: what the item being written carries.
        s_valid = Signal()
        s = Signal(self.i.payload.shape())
        m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]
        m.d.comb += self.done.eq(s_valid & s.last)

        # Clears follow the drain's reads by one cycle (the drain's register holds the word
        # by then).
        c_en, c_addr, c_bank = Signal(), Signal.like(self.drain.addr), Signal.like(self.drain.bank)
        m.d.sync += [c_en.eq(self.drain.en & self.drain.clear), c_addr.eq(self.drain.addr),
                     c_bank.eq(self.drain.bank)]

        # ports[buf][b]: the memory ports of every bank, both buffers. A word holds the
        # lanes x n sums of one position and pass, sum i in bits [acc_bits * i, acc_bits * (i + 1)).
        ports = [[None] * t.banks for _ in range(2)]
        for b in range(t.banks):
            for buf in range(2):
                mem = Memory(shape=unsigned(sums * acc_bits), depth=t.depth, init=[])
                m.submodules[f"bank{b}_{buf}"] = mem
                write = mem.write_port()
                read = mem.read_port(transparent_for=(write,))
                ports[buf][b] = (read, write, mem.read_port(domain="comb"))
            # The word comes from whichever buffer accumulates and goes back whole, each
            # lane's kernel sum replaced by it plus the lane's product (one adder per lane,
            # shared by the buffers).
            word = Signal(sums * acc_bits, name=f"word{b}")
            m.d.comb += word.eq(Mux(self.sel, ports[1][b][0].data, ports[0][b][0].data))
            slots = []
            for lane in range(lanes):
                kernel = s.kernel[b][lane]
                own = [_slot(word, lane * n + j, acc_bits) for j in range(n)]
                total = Signal(signed(acc_bits), name=f"sum{b}_{lane}")
                m.d.comb += total.eq(_pick(own, kernel) + s.product[b][lane])
                slots += [Mux(kernel == j, total, own[j]) for j in range(n)]
            new = Signal(sums * acc_bits, name=f"new{b}")
            m.d.comb += new.eq(Cat(*slots))
            writing = s_valid & s.write[b]
            # Reads only for items that write the bank: an idle port costs a simulator nothing.
            reading = self.i.valid & self.i.payload.write[b]
            for buf in range(2):
                read, write, drain = ports[buf][b]
                accumulating = self.sel == buf
                m.d.comb += [
                    read.addr.eq(self.i.payload.addr[b]),
                    read.en.eq(accumulating & reading),
                    drain.addr.eq(self.drain.addr),
                    write.addr.eq(Mux(accumulating, s.addr[b], c_addr)),
                    write.data.eq(Mux(accumulating, new, 0)),
                    write.en.eq(Mux(accumulating, writing, c_en & (c_bank == b))),
                ]
        # The drain's register: the idle buffer's word of the bank read. Only a drain read
        # loads it, so the selection across banks costs a simulator nothing in other cycles.
        held = Signal(sums * acc_bits)
        with m.If(self.drain.en):
            m.d.sync += held.eq(_pick([Mux(self.sel, ports[0][b][2].data, ports[1][b][2].data)
                                       for b in range(t.banks)], self.drain.bank))
        for index in range(sums):
            m.d.comb += self.drain.data[index].eq(_slot(held, index, acc_bits))
        return m
