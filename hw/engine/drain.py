"""Drain: read every accumulator of a finished input, add bias, requantise, max-pool.

The drain walks the (pooled) output in position-major order: for each
output position, each channel ascending, and (innermost) each position of
the pool window. Requantisation is monotonic, so the pool can take the max
of requantised int8 values (docs/netspec.md: conv -> requant -> pool), and
fusing it here means the pre-pool tensor never leaves the engine. Each entry
read is cleared, so the buffer is zero when the next input accumulates in it.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layouts import dense_layout
from ..requant import Requantiser
from .router import DrainPort

__all__ = ["WindowMax", "Drain"]


class WindowMax(wiring.Component):
    """Max of each run of ``size`` consecutive values of a dense int8 stream.

    The drain emits a pool window's values back to back, so pooling is a
    running max over a fixed count; ``last`` of the window's final value
    is kept.
    """

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        self._size = size
        super().__init__({"i": In(stream.Signature(dense_layout())),
                          "o": Out(stream.Signature(dense_layout()))})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self._size))
        best = Signal(signed(8))
        value = self.i.payload.value
        merged = Mux((count == 0) | (value > best), value, best)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(count == self._size - 1):
                m.d.sync += [count.eq(0), self.o.valid.eq(1), self.o.payload.value.eq(merged),
                             self.o.payload.last.eq(self.i.payload.last)]
            with m.Else():
                m.d.sync += [count.eq(count + 1), best.eq(merged)]
        return m


class Drain(wiring.Component):
    """Emit one finished input's outputs from the idle accumulator buffer.

    Parameters
    ----------
    layer : Conv2d or Linear
        Supplies ``n``, ``out_channels``, ``bias`` and ``requant``.
    lanes, passes : int
        Bank organisation (see :class:`Accumulators`).
    out_hw : (Ho, Wo)
        Pre-pool output positions ((1, 1) for linear).
    pool : int
        Pool window (1: none); must divide ``Ho`` and ``Wo``.
    acc_bits : int
        Accumulator width.

    Ports
    -----
    start : pulse: the idle buffer holds a finished input.
    busy : high from ``start`` until every entry was read and cleared.
    acc : read/clear port into the idle buffer.
    o : dense int8 stream (int32 ``acc + bias`` when ``layer.requant`` is None).
    """

    def __init__(self, layer, lanes: int, passes: int, out_hw: tuple, pool: int, acc_bits: int):
        ho, wo = out_hw
        if not isinstance(pool, int) or pool < 1 or ho % pool or wo % pool:
            raise ValueError(f"pool must be a positive integer dividing {out_hw}, got {pool!r}")
        if layer.requant is None and pool != 1:
            raise ValueError("pool must be 1 on a layer without requant (int32 outputs)")
        self._layer, self._lanes, self._passes = layer, lanes, passes
        self._out_hw, self._pool, self._acc_bits = out_hw, pool, acc_bits
        depth = passes * ho * wo * layer.n
        value = signed(8) if layer.requant is not None else signed(32)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "acc": Out(DrainPort(lanes, depth, acc_bits)),
            "o": Out(stream.Signature(dense_layout(value))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, s = self._layer, self._pool
        ho, wo = self._out_hw
        channels, n = layer.out_channels, layer.n
        py, px = Signal(range(ho // s)), Signal(range(wo // s))
        wi, wj = Signal(range(s)), Signal(range(s))
        c, j = Signal(range(channels)), Signal(range(n))
        lane, q = Signal(range(self._lanes)), Signal(range(self._passes))
        issuing = Signal()

        # Step the walk: window innermost, then channel (as kernel j of lane l of pass q),
        # then position.
        window_end = (wi == s - 1) & (wj == s - 1)
        final = (py == ho // s - 1) & (px == wo // s - 1) & (c == channels - 1) & window_end

        def step():
            m.d.sync += wj.eq(wj + 1)
            with m.If(wj == s - 1):
                m.d.sync += [wj.eq(0), wi.eq(wi + 1)]
                with m.If(wi == s - 1):
                    m.d.sync += [wi.eq(0), c.eq(c + 1), j.eq(j + 1)]
                    with m.If(j == n - 1):
                        m.d.sync += [j.eq(0), lane.eq(lane + 1)]
                        with m.If(lane == self._lanes - 1):
                            m.d.sync += [lane.eq(0), q.eq(q + 1)]
                    with m.If(c == channels - 1):
                        m.d.sync += [c.eq(0), j.eq(0), lane.eq(0), q.eq(0), px.eq(px + 1)]
                        with m.If(px == wo // s - 1):
                            m.d.sync += [px.eq(0), py.eq(py + 1)]

        # Read stage: entry and bias of the value being emitted, held while stalled.
        d_valid, d_last = Signal(), Signal()
        d_lane = Signal.like(lane)
        d_c = Signal.like(c)
        out_ready = Signal()
        advance = ~d_valid | out_ready
        p = (py * s + wi) * wo + px * s + wj
        m.submodules.bias = bias_mem = Memory(shape=signed(32), depth=channels,
                                              init=[int(b) for b in layer.bias])
        bias = bias_mem.read_port()
        m.d.comb += [
            self.acc.addr.eq((q * (ho * wo) + p) * n + j),
            self.acc.lane.eq(lane),
            self.acc.en.eq(advance),
            self.acc.clear.eq(issuing),
            bias.addr.eq(c),
            bias.en.eq(advance),
            self.busy.eq(issuing | d_valid),
        ]
        with m.If(advance):
            m.d.sync += [d_valid.eq(issuing), d_lane.eq(lane), d_c.eq(c), d_last.eq(final)]
            with m.If(issuing):
                step()
                with m.If(final):
                    m.d.sync += issuing.eq(0)
        with m.If(self.start):
            m.d.sync += [issuing.eq(1), py.eq(0), px.eq(0), wi.eq(0), wj.eq(0), c.eq(0),
                         j.eq(0), lane.eq(0), q.eq(0)]

        a = Signal(signed(self._acc_bits))
        m.d.comb += a.eq(self.acc.data[d_lane] + bias.data)
        if layer.requant is None:
            m.d.comb += [self.o.valid.eq(d_valid), self.o.payload.value.eq(a),
                         self.o.payload.last.eq(d_last), out_ready.eq(self.o.ready)]
            return m

        rq = layer.requant
        m.submodules.requant = requant = Requantiser(
            channels, self._acc_bits, [int(v) for v in rq.multiplier], [int(v) for v in rq.shift],
            out_min=rq.out_min, out_max=rq.out_max)
        m.d.comb += [requant.i.valid.eq(d_valid), requant.i.payload.a.eq(a),
                     requant.i.payload.channel.eq(d_c), requant.i.payload.last.eq(d_last),
                     out_ready.eq(requant.i.ready)]
        if s == 1:
            wiring.connect(m, requant.o, wiring.flipped(self.o))
        else:
            m.submodules.pool = pool = WindowMax(s * s)
            wiring.connect(m, requant.o, pool.i)
            wiring.connect(m, pool.o, wiring.flipped(self.o))
        return m
