"""The kernel's AXI4-Lite register file: Vitis ``ap_ctrl_hs`` control plus the run's arguments.

Offsets and bit meanings are those of :mod:`cosparse.hw.kernel.regmap`, the
module the host driver writes by. One write and one read are handled at a
time: a host writes a handful of registers per run, so the few cycles each
access takes cost nothing, and holding one transaction per channel keeps
the handshakes obviously compliant (AW and W may arrive in either order or
together; a response is held until taken).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import regmap
from .axi import axi_lite_signature

__all__ = ["Control"]


def _word(offset: int) -> int:
    return offset >> 2


def _strobed(old, data, strobe):
    """``old`` with the bytes of ``data`` selected by ``strobe`` written in."""
    return Cat(*(Mux(strobe[b], data.word_select(b, 8), old.word_select(b, 8))
                 for b in range(len(strobe))))


class Control(wiring.Component):
    """AXI4-Lite subordinate holding the control, interrupt, argument and status registers.

    The core it controls sees a one-cycle ``start`` strobe (``ap_start`` set
    while ``idle``), the arguments as plain signals, and reports a one-cycle
    ``done`` strobe, ``idle``, the cycle count of the last run and an error
    bit. Everything the host sees is decided here, so the core needs no
    knowledge of the register map.

    Ports
    -----
    bus : In(AXI4-Lite, 12-bit address, 32-bit data)
    start : Out(1), one cycle: begin a run with the current arguments.
    features, results : Out(64), buffer addresses; count : Out(32), inputs.
    done : In(1), one cycle: the run ended. idle : In(1), no run in progress.
    cycles : In(64), cycles of the last run. error : In(1), the status error bit.
    interrupt : Out(1), level: GIE and any enabled, pending ISR bit.
    """

    def __init__(self):
        super().__init__({
            "bus": In(axi_lite_signature(regmap.CONTROL_ADDRESS_BITS, regmap.CONTROL_DATA_BITS)),
            "start": Out(1),
            "features": Out(regmap.MEMORY_ADDRESS_BITS),
            "results": Out(regmap.MEMORY_ADDRESS_BITS),
            "count": Out(32),
            "done": In(1),
            "idle": In(1),
            "cycles": In(64),
            "error": In(1),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        word_bits = regmap.CONTROL_ADDRESS_BITS - 2
        ap_start, ap_done, ap_ready = Signal(), Signal(), Signal()
        gie, ier, isr = Signal(), Signal(2), Signal(2)

        # ---- write channel: hold AW and W until both are here -------------
        aw_full, aw_word = Signal(), Signal(word_bits)
        w_full, w_data, w_strb = Signal(), Signal(32), Signal(4)
        b_valid = Signal()
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full),
                     bus.bvalid.eq(b_valid), bus.bresp.eq(0)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_word.eq(bus.awaddr[2:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)
        write = Signal()
        m.d.comb += write.eq(aw_full & w_full & ~b_valid)
        isr_toggle = Signal(2)
        with m.If(write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1)]
            with m.Switch(aw_word):
                with m.Case(_word(regmap.CTRL)):
                    with m.If(w_strb[0] & w_data[0]):
                        m.d.sync += ap_start.eq(1)
                with m.Case(_word(regmap.GIE)):
                    with m.If(w_strb[0]):
                        m.d.sync += gie.eq(w_data[0])
                with m.Case(_word(regmap.IER)):
                    with m.If(w_strb[0]):
                        m.d.sync += ier.eq(w_data[:2])
                with m.Case(_word(regmap.ISR)):
                    m.d.comb += isr_toggle.eq(Mux(w_strb[0], w_data[:2], 0))
                for offset, register in ((regmap.FEATURES, self.features),
                                         (regmap.RESULTS, self.results)):
                    for half in range(2):
                        with m.Case(_word(offset) + half):
                            part = register.word_select(half, 32)
                            m.d.sync += part.eq(_strobed(part, w_data, w_strb))
                with m.Case(_word(regmap.COUNT)):
                    m.d.sync += self.count.eq(_strobed(self.count, w_data, w_strb))

        # ---- read channel: one registered response per address ------------
        r_valid, r_data = Signal(), Signal(32)
        m.d.comb += [bus.arready.eq(~r_valid), bus.rvalid.eq(r_valid), bus.rdata.eq(r_data),
                     bus.rresp.eq(0)]
        with m.If(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)
        read_ctrl = Signal()
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_valid.eq(1), r_data.eq(0)]
            with m.Switch(bus.araddr[2:]):
                with m.Case(_word(regmap.CTRL)):
                    m.d.comb += read_ctrl.eq(1)
                    m.d.sync += r_data.eq(Cat(ap_start, ap_done, self.idle, ap_ready))
                with m.Case(_word(regmap.GIE)):
                    m.d.sync += r_data.eq(gie)
                with m.Case(_word(regmap.IER)):
                    m.d.sync += r_data.eq(ier)
                with m.Case(_word(regmap.ISR)):
                    m.d.sync += r_data.eq(isr)
                for offset, register in ((regmap.FEATURES, self.features),
                                         (regmap.RESULTS, self.results),
                                         (regmap.CYCLES, self.cycles)):
                    for half in range(2):
                        with m.Case(_word(offset) + half):
                            m.d.sync += r_data.eq(register.word_select(half, 32))
                with m.Case(_word(regmap.COUNT)):
                    m.d.sync += r_data.eq(self.count)
                with m.Case(_word(regmap.STATUS)):
                    m.d.sync += r_data.eq(self.error)

        # ---- ap_ctrl_hs handshake and interrupts --------------------------
        # ap_done / ap_ready clear when CTRL is read; a run ending in the same cycle wins.
        with m.If(read_ctrl):
            m.d.sync += [ap_done.eq(0), ap_ready.eq(0)]
        with m.If(self.done):
            m.d.sync += [ap_start.eq(0), ap_done.eq(1), ap_ready.eq(1)]
        raised = Mux(self.done, ier, 0)
        m.d.sync += isr.eq((isr ^ isr_toggle) | raised)
        m.d.comb += [self.start.eq(ap_start & self.idle),
                     self.interrupt.eq(gie & isr.any())]
        return m
