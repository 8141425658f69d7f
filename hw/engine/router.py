"""Routing network and double-buffered accumulators.

Lane ``l`` of pass ``q`` serves group ``g = q * lanes + l``; its product
belongs to kernel ``j`` (the kernel id) of that group at output position
``p``. Each lane owns a bank whose entry ``(q * positions + p) * n + j`` is
that accumulator, so routing is only an address computation: the products
of one item never collide, because they sit in different banks.

Accumulation is a read-modify-write over two cycles. A product read in the
cycle another product to the same entry is written sees the written value
(the read port is transparent to the write port), and the write lands before
any later read, so consecutive activations on one entry are neither lost nor
counted twice, without a separate forwarding path.

Every bank exists twice: while one buffer accumulates an input, the drain
reads (and clears to zero) the other, so a new input never waits for the
previous one's outputs to leave.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .multiply import product_layout

__all__ = ["DrainPort", "Accumulators"]


class DrainPort(wiring.Signature):
    """The drain's view of the idle buffer: read (and clear) one entry of one bank.

    ``addr``/``en`` drive the read ports (``en`` low holds ``data``); when
    ``clear`` is high with ``en``, the entry read is set to zero on the next
    cycle, leaving the buffer ready for a later input. ``data`` holds every
    bank's entry one cycle after the read.
    """

    def __init__(self, lanes: int, depth: int, acc_bits: int):
        super().__init__({
            "addr": Out(unsigned(max(1, ceil_log2(depth)))),
            "lane": Out(unsigned(max(1, ceil_log2(lanes)))),
            "en": Out(1),
            "clear": Out(1),
            "data": In(data.ArrayLayout(signed(acc_bits), lanes)),
        })


class Accumulators(wiring.Component):
    """Banked, double-buffered accumulators fed by :class:`PackedMultiply`.

    Parameters
    ----------
    n : int
        Kernels per packed group.
    lanes, passes, positions : int
        Shape of the products stream (see :func:`product_layout`).
    acc_bits : int
        Signed accumulator width.

    Ports
    -----
    i : products, always accepted.
    sel : which buffer accumulates; the other belongs to ``drain``.
    done : high in the cycle the product marked ``last`` is written.
    """

    def __init__(self, n: int, lanes: int, passes: int, positions: int, acc_bits: int):
        for name, value in (("n", n), ("lanes", lanes), ("passes", passes),
                            ("positions", positions), ("acc_bits", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if acc_bits < 17:
            raise ValueError(f"acc_bits must hold an int16 product (>= 17), got {acc_bits}")
        self._n, self._lanes, self._positions, self._acc_bits = n, lanes, positions, acc_bits
        self.depth = passes * positions * n
        super().__init__({
            "i": In(stream.Signature(product_layout(n, lanes, passes, positions),
                                     always_ready=True)),
            "sel": In(1),
            "done": Out(1),
            "drain": In(DrainPort(lanes, self.depth, acc_bits)),
        })

    def entry(self, q, p, j):
        """Bank address of kernel ``j`` of pass ``q`` at position ``p`` (an expression)."""
        return ((q * self._positions + p) * self._n + j)[:len(self.drain.addr)]

    def elaborate(self, platform):
        m = Module()
        abits = len(self.drain.addr)
        # Read-modify-write stage: address, product and validity of the item being written.
        s_valid = Signal()
        s_last = Signal()
        s_addr = [Signal(abits, name=f"s_addr{l}") for l in range(self._lanes)]
        s_product = [Signal(signed(16), name=f"s_product{l}") for l in range(self._lanes)]
        m.d.sync += [s_valid.eq(self.i.valid), s_last.eq(self.i.payload.last)]
        m.d.comb += self.done.eq(s_valid & s_last)

        # Clears follow the drain's reads by one cycle (a same-cycle write would be seen
        # by the transparent read).
        c_en = Signal()
        c_addr = Signal(abits)
        c_lane = Signal.like(self.drain.lane)
        m.d.sync += [c_en.eq(self.drain.en & self.drain.clear), c_addr.eq(self.drain.addr),
                     c_lane.eq(self.drain.lane)]

        for lane in range(self._lanes):
            addr = self.entry(self.i.payload.q, self.i.payload.p, self.i.payload.kernel[lane])
            m.d.sync += [s_addr[lane].eq(addr), s_product[lane].eq(self.i.payload.product[lane])]
            for buf in range(2):
                mem = Memory(shape=signed(self._acc_bits), depth=self.depth, init=[])
                m.submodules[f"bank{lane}_{buf}"] = mem
                write = mem.write_port()
                read = mem.read_port(transparent_for=(write,))
                accumulating = self.sel == buf
                with m.If(accumulating):
                    m.d.comb += [
                        read.addr.eq(addr),
                        write.addr.eq(s_addr[lane]),
                        write.data.eq(read.data + s_product[lane]),
                        write.en.eq(s_valid),
                    ]
                with m.Else():
                    m.d.comb += [
                        read.addr.eq(self.drain.addr),
                        read.en.eq(self.drain.en),
                        write.addr.eq(c_addr),
                        write.data.eq(0),
                        write.en.eq(c_en & (c_lane == lane)),
                        self.drain.data[lane].eq(read.data),
                    ]
        return m
