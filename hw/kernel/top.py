"""``Kernel``: the network as a Vitis RTL kernel (``cosparse_kernel``).

A Vitis shell hosts an RTL kernel through fixed port names: ``ap_clk``,
``ap_rst_n`` (active low), an ``s_axi_control`` AXI4-Lite subordinate with
the ``ap_ctrl_hs`` registers and ``m_axi_<bundle>`` AXI4 managers. This
component has exactly those ports (one manager, ``m_axi_gmem``, for both
buffers, plus the optional ``interrupt``), built from the flat-name helpers
of :mod:`cosparse.hw.kernel.axi`, so ``verilog.convert(Kernel(...),
name="cosparse_kernel")`` is the kernel's Verilog as is.

Inside, in the ``sync`` domain of ``ap_clk`` / ``ap_rst_n``: the register
file (:class:`~.control.Control`), a burst reader streaming the features
buffer into :class:`~cosparse.hw.axis_top.AxisNetwork` (64-byte beats,
``tlast`` on each input's last beat) and a record writer storing each
result in the results buffer. Layout and offsets are those of
:mod:`cosparse.hw.kernel.regmap`. After the last result's write response
the kernel writes one more record, the trailer: the cycle count so far, the
status and the fingerprint of the NetSpec it was generated from
(:mod:`.fingerprint`), so a host learns everything about the run from the
results buffer (XRT's Python binding cannot read registers). A run ends
(``ap_done``) when the trailer's write response has come back; the CYCLES
register then holds the cycles from ``ap_start`` to ``ap_done`` (the
trailer's count stops one record earlier).

Reset: ``ap_rst_n`` resets every register, but not the contents of the
network's memories. The accumulator buffers are cleared as they are
drained, so a reset in mid-input would leave partial sums behind for the
next input. After every reset the kernel therefore first streams
:data:`SCRUB_INPUTS` all-zero inputs through the network and drops their
results (``ap_idle`` stays low meanwhile): each passes every engine and
drains one of its two buffers. That costs about two initiation intervals
after each reset.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...sw.netspec import NetSpec
from ..axis_top import AxisNetwork, result_bytes
from ..config import HwConfig
from . import regmap
from .axi import (axi4_read_signature, axi4_signature, axi4_write_signature, axi_lite_signature,
                  connect_flat, flat_members)
from .control import Control
from .dma import BurstReader, RecordWriter
from .fingerprint import netspec_fingerprint

__all__ = ["NAME", "SCRUB_INPUTS", "TRAILER_LAYOUT", "Kernel"]

#: Module name of the kernel's Verilog top level (and the Vitis kernel name).
NAME = "cosparse_kernel"
#: Zero inputs run through the network after a reset: one per accumulator buffer of an engine.
SCRUB_INPUTS = 2
#: The trailer record's fields, bit for bit as :data:`regmap.TRAILER_FIELDS` places them.
TRAILER_LAYOUT = data.StructLayout({name: 8 * size for name, _, size in regmap.TRAILER_FIELDS})


class Kernel(wiring.Component):
    """A NetSpec's accelerator behind Vitis RTL-kernel ports.

    Parameters
    ----------
    spec : NetSpec
    config : HwConfig or None
        As for :func:`cosparse.hw.generate.generate`.
    dense : bool
        Build the dense baseline instead of the sparse-sparse design.
    max_burst : int
        Longest read burst in beats, 1 to 64.

    Ports
    -----
    ap_clk, ap_rst_n : In(1). s_axi_control_* : AXI4-Lite subordinate (12-bit
    address, 32-bit data). m_axi_gmem_* : AXI4 manager (64-bit address,
    512-bit data, 1-bit IDs, always 0). interrupt : Out(1).
    """

    def __init__(self, spec: NetSpec, config: HwConfig | None = None, *, dense: bool = False,
                 max_burst: int = 64):
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        if config is not None and not isinstance(config, HwConfig):
            raise TypeError(f"config must be a HwConfig or None, got {type(config).__name__}")
        self.network = AxisNetwork(spec, config, dense=dense, beat_bytes=regmap.BEAT_BYTES)
        self.spec, self.dense = spec, self.network.dense
        self.classes, self.input_size = self.network.classes, self.network.input_size
        self.engines, self.beat_bytes = self.network.engines, regmap.BEAT_BYTES
        self.counter_bits = 64
        self.input_beats = regmap.input_stride(self.input_size) // regmap.BEAT_BYTES
        self.record_bytes = regmap.record_stride(self.classes)
        if self.record_bytes > regmap.BOUNDARY_BYTES:
            raise ValueError(f"{self.classes} classes need {self.record_bytes}-byte result "
                             f"records; the kernel writes at most {regmap.BOUNDARY_BYTES}")
        self.reader = BurstReader(max_burst=max_burst,
                                  length_bits=32 + self.input_beats.bit_length())
        self.fingerprint = netspec_fingerprint(spec)
        self.writer = RecordWriter(
            payload_bits=8 * max(result_bytes(self.classes), regmap.TRAILER_BYTES),
            record_bytes=self.record_bytes)
        self._control = axi_lite_signature(regmap.CONTROL_ADDRESS_BITS, regmap.CONTROL_DATA_BITS)
        self._memory = axi4_signature(regmap.MEMORY_ADDRESS_BITS, regmap.MEMORY_DATA_BITS)
        super().__init__({
            "ap_clk": In(1),
            "ap_rst_n": In(1),
            **flat_members("s_axi_control", self._control, manager=False),
            **flat_members("m_axi_gmem", self._memory, manager=True),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        m.submodules.control = control = Control()
        m.submodules.reader = reader = self.reader
        m.submodules.writer = writer = self.writer
        m.submodules.network = net = self.network
        connect_flat(m, self, "s_axi_control", control.bus, self._control, manager=False)
        reads = axi4_read_signature(regmap.MEMORY_ADDRESS_BITS, regmap.MEMORY_DATA_BITS)
        writes = axi4_write_signature(regmap.MEMORY_ADDRESS_BITS, regmap.MEMORY_DATA_BITS)
        connect_flat(m, self, "m_axi_gmem", reader.bus, reads, manager=True)
        connect_flat(m, self, "m_axi_gmem", writer.bus, writes, manager=True)

        # ---- after reset: zero inputs through the network, results dropped ----
        scrub_in = Signal(range(SCRUB_INPUTS + 1), init=SCRUB_INPUTS)
        scrub_out = Signal(range(SCRUB_INPUTS + 1), init=SCRUB_INPUTS)
        # AxisNetwork registers its reset once, so it leaves reset a cycle after this logic
        # does: wait two cycles before offering it anything.
        settled = Signal(2)
        m.d.sync += settled.eq(Cat(1, settled[0]))

        # ---- run control: busy from start until the last record is acknowledged ----
        busy = Signal()
        cycles = Signal(64)
        m.d.comb += [
            reader.start.eq(control.start), reader.address.eq(control.features),
            reader.beats.eq(control.count * self.input_beats),
            writer.start.eq(control.start), writer.address.eq(control.results),
            writer.records.eq(control.count + 1),  # the results, then the trailer
            control.idle.eq(~busy & (scrub_out == 0)), control.done.eq(busy & ~writer.busy),
            control.cycles.eq(cycles),
            control.error.eq(net.error | reader.error | writer.error),
            self.interrupt.eq(control.interrupt),
        ]
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(control.done):
            m.d.sync += busy.eq(0)
        with m.If(control.start):
            m.d.sync += [busy.eq(1), cycles.eq(1)]

        # ---- features (or scrub zeros) -> network: tlast on each input's last beat ----
        beat = Signal(range(self.input_beats))
        last = beat == self.input_beats - 1
        m.d.comb += net.s_axis_tlast.eq(last)
        with m.If(scrub_in != 0):
            m.d.comb += [net.s_axis_tdata.eq(0), net.s_axis_tvalid.eq(settled[1])]
        with m.Else():
            m.d.comb += [net.s_axis_tdata.eq(reader.o.payload),
                         net.s_axis_tvalid.eq(reader.o.valid),
                         reader.o.ready.eq(net.s_axis_tready)]
        with m.If(net.s_axis_tvalid & net.s_axis_tready):
            m.d.sync += beat.eq(0 if self.input_beats == 1 else beat + 1)
            with m.If(last):
                m.d.sync += beat.eq(0)
                with m.If(scrub_in != 0):
                    m.d.sync += scrub_in.eq(scrub_in - 1)

        # ---- network -> results (scrub results dropped), then the trailer ----
        # The writer takes a record only once the previous one is acknowledged, so when
        # it takes the trailer every result is in memory and `cycles` counts up to there.
        stored = Signal(32)
        trailer = Signal(TRAILER_LAYOUT)
        m.d.comb += [trailer.magic.eq(regmap.TRAILER_MAGIC), trailer.status.eq(control.error),
                     trailer.cycles.eq(cycles), trailer.fingerprint.eq(self.fingerprint),
                     trailer.count.eq(control.count), trailer.version.eq(regmap.TRAILER_VERSION)]
        with m.If(scrub_out != 0):
            m.d.comb += net.m_axis_tready.eq(1)
            with m.If(net.m_axis_tvalid):
                m.d.sync += scrub_out.eq(scrub_out - 1)
        with m.Elif(stored != control.count):
            m.d.comb += [writer.i.payload.eq(net.m_axis_tdata),
                         writer.i.valid.eq(net.m_axis_tvalid),
                         net.m_axis_tready.eq(writer.i.ready)]
            with m.If(writer.i.valid & writer.i.ready):
                m.d.sync += stored.eq(stored + 1)
        with m.Else():
            m.d.comb += [writer.i.payload.eq(trailer.as_value()), writer.i.valid.eq(busy)]
        with m.If(control.start):
            m.d.sync += stored.eq(0)
        return m
