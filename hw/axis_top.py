"""AXI4-Stream-named top level of the generated Network, for cocotb and for boards.

``Network`` (hw/top.py) speaks Amaranth streams whose flattened port names
(``i__payload``) no AXI tool recognises. ``AxisNetwork`` wraps it with flat,
AXI4-Stream-named ports, so cocotbext-axi's ``AxiStreamSource`` /
``AxiStreamSink`` (and a Vitis wrapper later) can drive it directly, and
adds cycle counters so a test bench need not sample anything every cycle.

Input side: ``s_axis_tdata`` carries ``beat_bytes`` int8 features per beat,
byte 0 in bits ``[7:0]`` (NetSpec flat ``(c, y, x)`` order). Each input is
one AXI frame: it starts on a fresh beat and ``tlast`` marks the beat that
holds its last feature; bytes of that beat past the input's end are ignored.
A serialiser feeds the Network one feature per cycle; ``s_axis_tready`` is
high whenever the beat register is empty or being emptied this cycle, so
back-to-back beats lose no cycle. A ``tlast`` that disagrees with the
feature count sets the sticky ``error`` bit (the count wins).

Output side: one single-beat frame (``m_axis_tlast`` = 1) per input:
``logits[k]`` (int32) at bits ``[32k+31:32k]``, then the predicted class,
zero-padded to whole bytes.

Reset: ``rst`` (synchronous, active high) is registered once before it
reaches the design, so it takes effect one cycle later (see ``elaborate``).

Counters (``counter_bits`` wide, cleared by reset, wrapping):
``cycles`` counts every cycle; ``busy_cycles`` holds one counter per engine,
engine ``e`` at bits ``[e*counter_bits +: counter_bits]``, counting the
cycles its ``busy`` bit is high; ``work_cycles`` likewise the cycles its
``work`` bit is high (the useful part of busy: multipliers fed).
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..sw.netspec import NetSpec
from .config import HwConfig
from .generate import generate

__all__ = ["AxisNetwork", "result_bits", "result_bytes"]


def result_bits(classes: int) -> int:
    """Bits of one result before padding: int32 logits and the class index."""
    return 32 * classes + max(1, ceil_log2(classes))


def result_bytes(classes: int) -> int:
    """Bytes of ``m_axis_tdata``."""
    return -(-result_bits(classes) // 8)


class AxisNetwork(wiring.Component):
    """A NetSpec's accelerator with flat AXI4-Stream ports and per-engine cycle counters.

    Parameters
    ----------
    spec : NetSpec
    config : HwConfig or None
        As for :func:`cosparse.hw.generate.generate` (default: one lane per group).
    dense : bool
        Build the dense baseline instead of the sparse-sparse design.
    beat_bytes : int
        Features per input beat, 1 to 64 (``s_axis_tdata`` is ``8 * beat_bytes`` bits).
    counter_bits : int
        Width of ``cycles`` and of each engine's busy counter, 16 to 64.

    Ports
    -----
    s_axis_tdata, s_axis_tvalid, s_axis_tready, s_axis_tlast : input features.
    m_axis_tdata, m_axis_tvalid, m_axis_tready, m_axis_tlast : results.
    busy : Out(engines), the Network's busy bits.
    cycles : Out(counter_bits); busy_cycles, work_cycles : Out(engines * counter_bits).
    error : Out(1), sticky: an input frame's ``tlast`` disagreed with its size.
    """

    def __init__(self, spec: NetSpec, config: HwConfig | None = None, *, dense: bool = False,
                 beat_bytes: int = 8, counter_bits: int = 48):
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        if (not isinstance(beat_bytes, int) or isinstance(beat_bytes, bool)
                or not 1 <= beat_bytes <= 64):
            raise ValueError(f"beat_bytes must be an integer from 1 to 64, got {beat_bytes!r}")
        if (not isinstance(counter_bits, int) or isinstance(counter_bits, bool)
                or not 16 <= counter_bits <= 64):
            raise ValueError(f"counter_bits must be an integer from 16 to 64, "
                             f"got {counter_bits!r}")
        self.network = generate(spec, config, dense=dense)
        if beat_bytes % self.network.input_width:
            raise ValueError(f"beat_bytes = {beat_bytes} must be a multiple of the config's "
                             f"input_width = {self.network.input_width} (the network takes "
                             f"that many features a cycle out of each input beat)")
        self.spec, self.dense = spec, bool(dense)
        self.beat_bytes, self.counter_bits = beat_bytes, counter_bits
        self.input_size = 1
        for extent in spec.input.shape:
            self.input_size *= extent
        self.classes = len(spec.classes)
        self.engines = len(self.network.busy)
        super().__init__({
            "s_axis_tdata": In(8 * beat_bytes),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(8 * result_bytes(self.classes)),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            "busy": Out(self.engines),
            "cycles": Out(counter_bits),
            "busy_cycles": Out(self.engines * counter_bits),
            "work_cycles": Out(self.engines * counter_bits),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Everything runs in ``core``: the ``sync`` clock with the ``rst`` input registered
        # once. A reset straight from a top-level input makes every register's next-state
        # logic depend on an input, which Verilator then re-evaluates on every evaluation
        # (both clock edges and every write from the bench), not once per clock.
        m.domains.core = core = ClockDomain("core", local=True)
        reset = Signal(init=1)
        m.d.sync += reset.eq(ResetSignal("sync"))
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(reset)]
        m.submodules.network = net = DomainRenamer("core")(self.network)
        # ---- input: one wide beat -> ``per`` features per cycle (``input_width``) ----
        per = net.input_width
        size, width = self.input_size // per, self.beat_bytes // per  # in network beats
        beat = Signal(8 * self.beat_bytes)
        full = Signal()
        lane = Signal(range(width))
        pos = Signal(range(size))
        end_of_input = pos == size - 1
        take = net.i.valid & net.i.ready
        beat_done = take & (end_of_input | (lane == width - 1))
        features = beat.word_select(lane, 8 * per)
        m.d.comb += [
            net.i.valid.eq(full),
            net.i.payload.last.eq(end_of_input),
            self.s_axis_tready.eq(~full | beat_done),
        ]
        if per == 1:
            m.d.comb += net.i.payload.value.eq(features)
        else:
            m.d.comb += net.i.payload.values.as_value().eq(features)
        next_pos = Signal.like(pos)
        m.d.comb += next_pos.eq(pos)
        with m.If(take):
            m.d.comb += next_pos.eq(0)
            with m.If(~end_of_input):
                m.d.comb += next_pos.eq(pos + 1)
            m.d.core += lane.eq(lane + 1)
        m.d.core += pos.eq(next_pos)
        with m.If(beat_done):
            m.d.core += [full.eq(0), lane.eq(0)]
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            m.d.core += [beat.eq(self.s_axis_tdata), full.eq(1)]
            holds_end = next_pos + width >= size
            with m.If(holds_end != self.s_axis_tlast):
                m.d.core += self.error.eq(1)

        # ---- output: one result per single-beat frame ---------------------
        m.d.comb += [
            self.m_axis_tdata.eq(net.o.payload.as_value()),
            self.m_axis_tvalid.eq(net.o.valid),
            net.o.ready.eq(self.m_axis_tready),
            self.m_axis_tlast.eq(1),
            self.busy.eq(net.busy),
        ]

        # ---- counters -----------------------------------------------------
        m.d.core += self.cycles.eq(self.cycles + 1)
        for kind, bits, port in (("busy", net.busy, self.busy_cycles),
                                 ("work", net.work, self.work_cycles)):
            counters = []
            for e in range(self.engines):
                counter = Signal(self.counter_bits, name=f"{kind}_cycles_{e}")
                with m.If(bits[e]):
                    m.d.core += counter.eq(counter + 1)
                counters.append(counter)
            m.d.comb += port.eq(Cat(*counters))
        return m
