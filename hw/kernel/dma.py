"""AXI4 burst reader (features in) and record writer (results out) of the kernel.

Both keep one burst in flight. The network needs one 64-byte beat per
64 cycles at most (it takes one feature per cycle) and returns one result
per initiation interval (hundreds to thousands of cycles), so a second
outstanding burst would buy nothing and one keeps the ordering and the
reset story trivial: nothing is ever owed to or by the memory beyond the
current burst.

Neither side loses data under backpressure. The reader asks for a burst
only when its FIFO has room for all of it, so it never has to stall the R
channel for long (``rready`` is the FIFO's ``w_rdy``, which stays high);
the writer holds a record until its write response has come back.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from . import regmap
from .axi import axi4_read_signature, axi4_write_signature

__all__ = ["BurstReader", "RecordWriter"]

#: AxSIZE of a full 64-byte beat, AxBURST of an incrementing burst, AxCACHE "normal,
#: non-cacheable, bufferable" (what Vitis HLS masters issue).
_SIZE = exact_log2(regmap.BEAT_BYTES)
_INCR = 0b01
_CACHE = 0b0011
_BOUNDARY_BEATS = regmap.BOUNDARY_BYTES // regmap.BEAT_BYTES


def _positive(name, value, high):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ValueError(f"{name} must be an integer from 1 to {high}, got {value!r}")


class BurstReader(wiring.Component):
    """Read ``beats`` 64-byte beats from ``address`` and stream them out in order.

    Bursts are INCR, at most ``max_burst`` beats, split so that none crosses a
    4 KiB boundary. The low six address bits are ignored (beats are aligned).

    Parameters
    ----------
    max_burst : int
        Longest burst in beats, 1 to 64 (64 beats = 4 KiB, the AXI limit for
        64-byte beats).
    fifo_depth : int or None
        Beats buffered between the R channel and ``o``; at least ``max_burst``
        (default: ``max_burst``).
    length_bits : int
        Width of ``beats``.

    Ports
    -----
    bus : Out(AXI4 read channels). start : In(1), one cycle: latch ``address``
    and ``beats`` and begin; must only come when the previous read is done.
    o : Out(stream of 512-bit beats). error : Out(1): a read answered with an
    error response since the last start.
    """

    def __init__(self, *, max_burst: int = 64, fifo_depth: int | None = None,
                 length_bits: int = 40):
        _positive("max_burst", max_burst, _BOUNDARY_BEATS)
        fifo_depth = max_burst if fifo_depth is None else fifo_depth
        _positive("fifo_depth", fifo_depth, 4096)
        if fifo_depth < max_burst:
            raise ValueError(f"fifo_depth must hold a whole burst ({max_burst} beats), "
                             f"got {fifo_depth}")
        _positive("length_bits", length_bits, 64)
        self.max_burst, self.fifo_depth, self.length_bits = max_burst, fifo_depth, length_bits
        super().__init__({
            "bus": Out(axi4_read_signature(regmap.MEMORY_ADDRESS_BITS, regmap.MEMORY_DATA_BITS)),
            "start": In(1),
            "address": In(regmap.MEMORY_ADDRESS_BITS),
            "beats": In(length_bits),
            "o": Out(stream.Signature(regmap.MEMORY_DATA_BITS)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=regmap.MEMORY_DATA_BITS,
                                                    depth=self.fifo_depth)
        address = Signal(regmap.MEMORY_ADDRESS_BITS)
        remaining = Signal(self.length_bits)
        in_flight = Signal()

        # Beats left before the next 4 KiB boundary, then the burst: the least of three.
        to_boundary = Signal(range(_BOUNDARY_BEATS + 1))
        m.d.comb += to_boundary.eq(_BOUNDARY_BEATS - address[_SIZE:12])
        capped = Signal(range(self.max_burst + 1))
        m.d.comb += capped.eq(Mux(to_boundary < self.max_burst, to_boundary, self.max_burst))
        burst = Signal(range(self.max_burst + 1))
        m.d.comb += burst.eq(Mux(remaining < capped, remaining, capped))

        # Only ask for what the FIFO can hold: while no burst is in flight the FIFO only
        # drains, so once raised, arvalid stays up with araddr/arlen unchanged.
        room = fifo.w_level + burst <= self.fifo_depth
        m.d.comb += [
            bus.arvalid.eq((remaining != 0) & ~in_flight & room),
            bus.araddr.eq(address), bus.arlen.eq(burst - 1), bus.arsize.eq(_SIZE),
            bus.arburst.eq(_INCR), bus.arcache.eq(_CACHE), bus.arprot.eq(0), bus.arid.eq(0),
        ]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [address.eq(address + (burst << _SIZE)), remaining.eq(remaining - burst),
                         in_flight.eq(1)]

        m.d.comb += [fifo.w_data.eq(bus.rdata), fifo.w_en.eq(bus.rvalid),
                     bus.rready.eq(fifo.w_rdy)]
        with m.If(bus.rvalid & bus.rready):
            with m.If(bus.rlast):
                m.d.sync += in_flight.eq(0)
            with m.If(bus.rresp[1]):
                m.d.sync += self.error.eq(1)

        m.d.comb += [self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.o.ready)]

        with m.If(self.start):
            m.d.sync += [address.eq(self.address & ~Const(regmap.BEAT_BYTES - 1, 64)),
                         remaining.eq(self.beats), self.error.eq(0)]
        return m


class RecordWriter(wiring.Component):
    """Write each record taken from ``i`` as one INCR burst, records back to back from ``address``.

    A record of ``record_bytes`` (a power of two of beats, at most 4 KiB)
    is written at ``address + n * record_bytes`` for the n-th record since
    ``start``; ``address`` must be record-aligned so that no burst crosses a
    4 KiB boundary (the driver checks it). Payload bits past ``payload_bits``
    are written as zeros.

    Parameters
    ----------
    payload_bits : int
        Bits of one record's payload (``i``'s width).
    record_bytes : int
        Bytes each record occupies: a power of two, 64 to 4096, at least
        ``payload_bits / 8``.

    Ports
    -----
    bus : Out(AXI4 write channels). start : In(1), one cycle: latch ``address``
    and ``records`` (33 bits: a full 32-bit count of results plus the
    kernel's trailer) and begin. i : In(stream of records). busy : Out(1):
    records remain to be written or acknowledged. error : Out(1): a write was
    answered with an error response since the last start.
    """

    def __init__(self, *, payload_bits: int, record_bytes: int):
        _positive("payload_bits", payload_bits, 8 * regmap.BOUNDARY_BYTES)
        if (not isinstance(record_bytes, int) or record_bytes < regmap.BEAT_BYTES
                or record_bytes > regmap.BOUNDARY_BYTES or record_bytes & (record_bytes - 1)):
            raise ValueError(f"record_bytes must be a power of two from {regmap.BEAT_BYTES} to "
                             f"{regmap.BOUNDARY_BYTES}, got {record_bytes!r}")
        if 8 * record_bytes < payload_bits:
            raise ValueError(f"a {payload_bits}-bit payload does not fit a {record_bytes}-byte "
                             f"record")
        self.payload_bits, self.record_bytes = payload_bits, record_bytes
        self.record_beats = record_bytes // regmap.BEAT_BYTES
        super().__init__({
            "bus": Out(axi4_write_signature(regmap.MEMORY_ADDRESS_BITS,
                                            regmap.MEMORY_DATA_BITS)),
            "start": In(1),
            "address": In(regmap.MEMORY_ADDRESS_BITS),
            "records": In(33),
            "i": In(stream.Signature(payload_bits)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        beats = self.record_beats
        address = Signal(regmap.MEMORY_ADDRESS_BITS)
        remaining = Signal(33)
        record = Signal(8 * self.record_bytes)
        active, aw_pending, w_active = Signal(), Signal(), Signal()
        beat = Signal(range(beats))

        m.d.comb += [self.i.ready.eq((remaining != 0) & ~active),
                     self.busy.eq((remaining != 0) | active)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [record.eq(self.i.payload), active.eq(1), aw_pending.eq(1),
                         w_active.eq(1), beat.eq(0)]

        m.d.comb += [
            bus.awvalid.eq(aw_pending), bus.awaddr.eq(address), bus.awlen.eq(beats - 1),
            bus.awsize.eq(_SIZE), bus.awburst.eq(_INCR), bus.awcache.eq(_CACHE),
            bus.awprot.eq(0), bus.awid.eq(0),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += aw_pending.eq(0)

        last = beat == beats - 1
        m.d.comb += [bus.wvalid.eq(w_active),
                     bus.wdata.eq(record.word_select(beat, regmap.MEMORY_DATA_BITS)),
                     bus.wstrb.eq(-1), bus.wlast.eq(last)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(last):
                m.d.sync += [w_active.eq(0), beat.eq(0)]

        # The response comes after the burst's last beat; only then is the record free.
        m.d.comb += bus.bready.eq(active & ~aw_pending & ~w_active)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += [active.eq(0), remaining.eq(remaining - 1),
                         address.eq(address + self.record_bytes)]
            with m.If(bus.bresp[1]):
                m.d.sync += self.error.eq(1)

        with m.If(self.start):
            m.d.sync += [address.eq(self.address), remaining.eq(self.records), self.error.eq(0)]
        return m
