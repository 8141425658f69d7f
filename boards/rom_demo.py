"""A board top that runs a NetSpec's accelerator on inputs from a ROM and shows results on LEDs.

The thinnest design that really runs on a board with only a clock and
LEDs: a few inputs and the golden model's predictions for them are baked
into the bitstream; the accelerator (:class:`cosparse.hw.axis_top.AxisNetwork`)
classifies one input about every ``2**hold_bits`` cycles (0.67 s at 25 MHz
with the default 24), round robin, and the LEDs show

- ``led[0 : class_bits]``: the class just predicted;
- ``led[-1]``: lit while every result so far equalled the golden model's
  prediction (sticky: it goes dark for good at the first mismatch);
- ``led[-2]``: toggles on every result (the design is alive).

So the board checks itself: the rightmost LED staying on is the bit-exact
test of the synthesised netlist on silicon.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, ClockDomain, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import io
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from ..hw.axis_top import AxisNetwork
from ..sw import golden
from ..sw.golden import validate_inputs
from ..sw.netspec import NetSpec

__all__ = ["RomDemo"]


class RomDemo(Elaboratable):
    """Board top: ROM inputs -> AxisNetwork -> LEDs (see the module docstring).

    Parameters
    ----------
    spec : NetSpec
    inputs : numpy.ndarray
        int8 inputs ``[N, *spec.input.shape]``, N from 1 to 64, stored in the ROM.
    hold_bits : int
        log2 of the cycles between two inputs, 1 to 30 (small values for simulation).
    leds : int
        LEDs the board has (at least ``class_bits + 2``).
    config : HwConfig or None
        The network's parallelism (default: :meth:`HwConfig.default_for`).
    """

    def __init__(self, spec: NetSpec, inputs, *, hold_bits: int = 24, leds: int = 8,
                 config=None):
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        x = validate_inputs(spec, np.asarray(inputs))
        if not 1 <= len(x) <= 64:
            raise ValueError(f"inputs must hold 1 to 64 inputs, got {len(x)}")
        if (isinstance(hold_bits, bool) or not isinstance(hold_bits, int)
                or not 1 <= hold_bits <= 30):
            raise ValueError(f"hold_bits must be an integer from 1 to 30, got {hold_bits!r}")
        self.spec, self.inputs, self.hold_bits = spec, x, hold_bits
        self.predictions = golden.run(spec, x, keep_activations=False).predictions
        self.class_bits = max(1, ceil_log2(len(spec.classes)))
        if not isinstance(leds, int) or leds < self.class_bits + 2:
            raise ValueError(f"leds must be at least {self.class_bits + 2} "
                             f"(class bits + 2), got {leds!r}")
        self.leds = leds
        self.network = AxisNetwork(spec, config, beat_bytes=1, counter_bits=16)
        #: The class on the LEDs, the sticky golden agreement and the result toggle.
        self.shown = Signal(self.class_bits)
        self.all_ok = Signal(init=1)
        self.alive = Signal()

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            # The board's clock with a power-on reset: the platform's own ``sync`` is
            # reset-less, and the accelerator's wrapper registers ``sync``'s reset.
            m.domains.sync = sync = ClockDomain("sync")
            m.domains.por = por = ClockDomain("por", reset_less=True)
            m.submodules.clk_buffer = clk = io.Buffer(
                "i", platform.request(platform.default_clk, 0, dir="-"))
            m.d.comb += [por.clk.eq(clk.i), sync.clk.eq(por.clk)]
            startup = Signal(4)
            with m.If(~startup.all()):
                m.d.por += startup.eq(startup + 1)
            m.d.comb += sync.rst.eq(~startup.all())
        m.submodules.network = net = self.network
        count, size = len(self.inputs), net.input_size
        flat = self.inputs.reshape(count * size).view(np.uint8)
        m.submodules.rom = rom = Memory(shape=8, depth=count * size, init=flat.tolist())
        read = rom.read_port()

        # ---- feeder: one input per hold period, one feature per beat --------
        addr = Signal(range(count * size))
        pos = Signal(range(size))
        primed = Signal()  # the read port shows mem[addr] from the second cycle on
        sending = Signal()
        hold = Signal(self.hold_bits)
        m.d.sync += [primed.eq(1), hold.eq(hold + 1)]
        beat = sending & primed & net.s_axis_tready
        next_addr = Signal.like(addr)
        m.d.comb += [
            next_addr.eq(addr),
            net.s_axis_tdata.eq(read.data),
            net.s_axis_tvalid.eq(sending & primed),
            net.s_axis_tlast.eq(pos == size - 1),
            read.addr.eq(next_addr),
        ]
        with m.If(beat):
            m.d.comb += next_addr.eq(Mux(addr == count * size - 1, 0, addr + 1))
            m.d.sync += pos.eq(Mux(pos == size - 1, 0, pos + 1))
            with m.If(pos == size - 1):
                m.d.sync += sending.eq(0)
        with m.If(~sending & (hold == 0) & primed):
            m.d.sync += sending.eq(1)
        m.d.sync += addr.eq(next_addr)

        # ---- results: class on the LEDs, sticky agreement with the golden model
        predicted = net.m_axis_tdata[32 * net.classes:][:self.class_bits]
        expected = Array(Const(int(p), self.class_bits) for p in self.predictions)
        index = Signal(range(count))
        shown, all_ok, alive = self.shown, self.all_ok, self.alive
        m.d.comb += net.m_axis_tready.eq(1)
        with m.If(net.m_axis_tvalid):
            m.d.sync += [shown.eq(predicted), alive.eq(~alive),
                         index.eq(Mux(index == count - 1, 0, index + 1))]
            with m.If((predicted != expected[index]) | net.error):
                m.d.sync += all_ok.eq(0)
        if platform is not None:
            led = []
            for i in range(self.leds):
                m.submodules[f"led_buffer_{i}"] = buffer = io.Buffer(
                    "o", platform.request("led", i, dir="-"))
                led.append(buffer.o)
            m.d.comb += [led[i].eq(shown[i]) for i in range(self.class_bits)]
            m.d.comb += [led[-1].eq(all_ok), led[-2].eq(alive)]
        return m
