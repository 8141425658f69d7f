"""Routing network and double-buffered, banked accumulators.

Lane ``l`` of pass ``q`` serves group ``g = q * lanes + l``; its product
belongs to kernel ``j`` (the kernel id) of that group. The accumulators of
one output position and pass are one memory word of ``lanes x n`` sums
(lane-major, kernel inside), written with one enable per sum: a product
updates only the sum of its kernel, and the products of the ``lanes``
lanes of one item go to different sums of the same word, so they never
collide. The ``banks`` of :mod:`.tiling` hold disjoint sets of positions and
take one word write each per cycle, which is what lets a tile of kernel
offsets be accumulated at once.

Accumulation is a read-modify-write over two cycles. A word read in the
cycle another product to the same sum is written sees the written value
(the read port is transparent to the write port, sum by sum), and the write
lands before any later read, so consecutive activations on one sum are
neither lost nor counted twice, without a separate forwarding path.

Every bank exists twice: while one buffer accumulates an input, the drain
reads (and clears to zero) the other, so a new input never waits for the
previous one's outputs to leave. A drain read returns every sum of one
position and pass: ``lanes x n`` output channels in one cycle.
"""

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .multiply import bits, product_layout

__all__ = ["DrainPort", "Accumulators"]


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
        Signed accumulator width (>= 17: an int8 x int8 product and a sign).

    Ports
    -----
    i : products, always accepted.
    sel : which buffer accumulates; the other belongs to ``drain``.
    done : high in the cycle the item marked ``last`` is written.
    drain : :class:`DrainPort` into the other buffer.
    """

    def __init__(self, n: int, lanes: int, tiling, acc_bits: int):
        for name, value in (("n", n), ("lanes", lanes), ("acc_bits", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if acc_bits < 17:
            raise ValueError(f"acc_bits must hold an int16 product (>= 17), got {acc_bits}")
        self._n, self._lanes, self._tiling, self._acc_bits = n, lanes, tiling, acc_bits
        super().__init__({
            "i": In(stream.Signature(product_layout(n, lanes, tiling), always_ready=True)),
            "sel": In(1),
            "done": Out(1),
            "drain": In(DrainPort(lanes * n, tiling.banks, tiling.depth, acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        n, lanes, t, acc_bits = self._n, self._lanes, self._tiling, self._acc_bits
        sums = lanes * n
        everything = (1 << sums) - 1
        # Read-modify-write stage: what the item being written carries.
        s_valid = Signal()
        s = Signal(self.i.payload.shape())
        m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]
        m.d.comb += self.done.eq(s_valid & s.last)

        # Clears follow the drain's reads by one cycle (a same-cycle write would be seen
        # by the transparent read).
        c_en, c_addr, c_bank = Signal(), Signal.like(self.drain.addr), Signal.like(self.drain.bank)
        d_bank = Signal.like(self.drain.bank)
        m.d.sync += [c_en.eq(self.drain.en & self.drain.clear), c_addr.eq(self.drain.addr),
                     c_bank.eq(self.drain.bank)]
        with m.If(self.drain.en):
            m.d.sync += d_bank.eq(self.drain.bank)

        idle_words = [[], []]  # per buffer, each bank's read word
        for b in range(t.banks):
            for buf in range(2):
                mem = Memory(shape=unsigned(sums * acc_bits), depth=t.depth, init=[])
                m.submodules[f"bank{b}_{buf}"] = mem
                write = mem.write_port(granularity=acc_bits)
                read = mem.read_port(transparent_for=(write,))
                word = data.ArrayLayout(signed(acc_bits), sums)(read.data)
                idle_words[buf].append(read.data)
                with m.If(self.sel == buf):
                    # One sum per lane changes: the kernel's, by the lane's product.
                    new, enable = [], []
                    for lane in range(lanes):
                        kernel = s.kernel[b][lane]
                        old = Array(word[lane * n + j] for j in range(n))[kernel]
                        total = Signal(signed(acc_bits), name=f"sum{b}_{buf}_{lane}")
                        m.d.comb += total.eq(old + s.product[b][lane])
                        new += [total] * n
                        enable.append((1 << kernel)[:n])
                    m.d.comb += [
                        read.addr.eq(self.i.payload.addr[b]),
                        write.addr.eq(s.addr[b]),
                        write.data.eq(Cat(*new)),
                        write.en.eq(Mux(s_valid & s.write[b], Cat(*enable), 0)),
                    ]
                with m.Else():
                    m.d.comb += [
                        read.addr.eq(self.drain.addr),
                        read.en.eq(self.drain.en),
                        write.addr.eq(c_addr),
                        write.data.eq(0),
                        write.en.eq(Mux(c_en & (c_bank == b), everything, 0)),
                    ]
        # The idle buffer's word of the bank last read.
        m.d.comb += self.drain.data.eq(
            Mux(self.sel, Array(idle_words[0])[d_bank], Array(idle_words[1])[d_bank]))
        return m
