"""Drains: read the sums of a finished input, add bias, requantise (and max-pool).

- :class:`PositionDrain` (convolutions) reads one output position per
  cycle: one accumulator word per bank holds every channel of a position
  and pass (:mod:`.router`), so a cycle yields ``lanes x n`` channels; a
  :class:`~cosparse.hw.requant.VectorRequantiser` scales them all at once
  and a :class:`~.pool.VectorPool` takes the max over the pool window. The
  output is one vector beat per (pooled) position (hw/layouts.py).
- :class:`ChannelDrain` (linear layers) emits ``width`` consecutive
  channels per cycle (one, the order the global k-WTA and the argmax
  consume; more, as one vector beat, before a wide global k-WTA): each
  lane's accumulators are memories of single sums
  (:class:`~.router.LaneAccumulators`), so a cycle reads exactly the
  channels due.

Every word read is cleared on the next cycle, so the buffer is zero when
the next input accumulates in it.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layouts import dense_layout, dense_vector_layout, value_shape
from ..requant import Requantiser, VectorRequantiser
from .pool import VectorPool
from .kernel_ring import READ_LATENCY, KernelRingPort
from .router import DrainPort, SumPort

__all__ = ["PositionDrain", "ChannelDrain"]


def _lut(values, index):
    """``values[index]`` for a constant table."""
    return Array(Const(v, range(max(values) + 1)) for v in values)[index]


class PositionDrain(wiring.Component):
    """Emit one finished convolution input as vector beats, one per (pooled) position.

    The walk is position-major over the pooled output: for each output
    position (raster order), each position of its pool window, each pass;
    one word read per step. A pooled output therefore costs ``size * size *
    passes`` cycles. From kernel-addressed accumulators (``by_kernel``,
    :mod:`.kernel_ring`) a read yields one kernel of every lane, so each
    pass takes ``n`` reads (kernels innermost) and costs ``n`` times as many
    cycles; the requantiser then has ``lanes`` multipliers instead of
    ``lanes x n``, and the channels, which such a read holds ``n`` apart,
    are put back in order by wiring alone.

    Parameters
    ----------
    layer : Conv2d
        Supplies ``n``, ``out_channels``, ``bias`` and ``requant`` (required).
    lanes : int
        Groups per pass.
    tiling : Tiling
        Bank organisation and the pre-pool output size.
    pool : int
        Pool window (1: none); must divide both output extents.
    acc_bits : int
        Accumulator width.
    ring : bool
        Drain a row window (:mod:`.ring`) while the input accumulates: the
        walk takes pool-row groups as they become final (``final``) and reads
        only when the accumulators' port is free (``acc.free``).
    by_kernel : bool
        Read kernel-addressed ring accumulators (:class:`~.kernel_ring.KernelRingPort`;
        ``ring`` must be set): no ``free`` to wait for and no clear.

    Ports
    -----
    start : pulse: the idle buffer holds a finished input (ring: the next
        input may begin; the walk restarts at group 0).
    busy : high from ``start`` until every word was read (and handed to requantisation);
        ring: while a word read waits for requantisation.
    acc : read/clear port into the idle buffer (ring: into the ring); with
        ``by_kernel`` a :class:`~.kernel_ring.KernelRingPort`.
    final : ring only: pool-row groups (``pool`` output rows each) whose sums are
        complete and written.
    drained : ring only: groups whose words have all been read (and so cleared).
    o : ``dense_vector_layout(out_channels, value_shape(layer.requant.frac_bits))``:
        int8, or int8 with the requantisation's fraction bits.
    """

    def __init__(self, layer, lanes: int, tiling, pool: int, acc_bits: int, ring: bool = False,
                 by_kernel: bool = False):
        ho, wo = tiling.out_hw
        if not isinstance(pool, int) or pool < 1 or ho % pool or wo % pool:
            raise ValueError(f"layer {layer.name!r}: pool must be a positive integer dividing "
                             f"the output {tiling.out_hw}, got {pool!r}")
        if layer.requant is None:
            raise ValueError(f"layer {layer.name!r}: a position drain needs requant")
        if by_kernel and not ring:
            raise ValueError(f"layer {layer.name!r}: kernel-addressed accumulators are a ring")
        self._layer, self._lanes, self._t = layer, lanes, tiling
        self._pool, self._acc_bits, self._ring, self._by_kernel = pool, acc_bits, ring, by_kernel
        groups = range(ho // pool + 1)
        port = (KernelRingPort(lanes, tiling.banks, tiling.depth, layer.n, acc_bits) if by_kernel
                else DrainPort(lanes * layer.n, tiling.banks, tiling.depth, acc_bits))
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "acc": Out(port),
            "o": Out(stream.Signature(dense_vector_layout(layer.out_channels,
                                                          value_shape(layer.requant.frac_bits)))),
            **({"final": In(groups), "drained": Out(groups)} if ring else {}),
        })

    def _slices(self):
        """``(width, kernels, order)``: channels per read, reads per position and pass, and
        the channel of each element of the reads in walk order (slice ``q * kernels + j``,
        element ``e``): a word holds channels ``q * width + e``; a kernel read holds lane
        ``e``'s kernel ``j``, channel ``(q * lanes + e) * n + j``."""
        n, passes = self._layer.n, self._t.passes
        if not self._by_kernel:
            width = self._lanes * n
            return width, 1, list(range(passes * width))
        return self._lanes, n, [(q * self._lanes + e) * n + j for q in range(passes)
                                for j in range(n) for e in range(self._lanes)]

    def elaborate(self, platform):
        m = Module()
        layer, t, s = self._layer, self._t, self._pool
        ho, wo = t.out_hw
        passes = t.passes
        width, kernels, order = self._slices()
        channels = layer.out_channels
        py, px = Signal(range(ho // s)), Signal(range(wo // s))
        wi, wj = Signal(range(s)), Signal(range(s))
        q, j = Signal(range(passes)), Signal(range(kernels))
        # Ring: armed from reset, and each group waits until it is final; a word read waits
        # for a cycle in which the read-modify-write leaves the port free (kernel-addressed
        # accumulators have a read port of the drain's own).
        issuing = Signal(init=int(self._ring))
        go = issuing
        if self._ring:
            go = issuing & (py < self.final)
            if not self._by_kernel:
                go &= self.acc.free
        at_end = ((py == ho // s - 1) & (px == wo // s - 1) & (wi == s - 1) & (wj == s - 1)
                  & (q == passes - 1) & (j == kernels - 1))

        def step():
            m.d.sync += j.eq(j + 1)
            with m.If(j == kernels - 1):
                m.d.sync += [j.eq(0), q.eq(q + 1)]
                with m.If(q == passes - 1):
                    m.d.sync += [q.eq(0), wj.eq(wj + 1)]
                    with m.If(wj == s - 1):
                        m.d.sync += [wj.eq(0), wi.eq(wi + 1)]
                        with m.If(wi == s - 1):
                            m.d.sync += [wi.eq(0), px.eq(px + 1)]
                            with m.If(px == wo // s - 1):
                                m.d.sync += [px.eq(0), py.eq(py + 1)]

        # Read stages, in lockstep and held while stalled: the word (kernel-addressed
        # accumulators: READ_LATENCY stages, the last holding the difference) and, beside
        # the last, the biases of the slice being emitted.
        latency = READ_LATENCY if self._by_kernel else 1
        slice_index = Signal(range(passes * kernels))
        d_valid = [Signal(name=f"d_valid{i}") for i in range(latency)]
        d_last = [Signal(name=f"d_last{i}") for i in range(latency)]
        d_slice = [Signal.like(slice_index, name=f"d_slice{i}") for i in range(latency)]
        out_ready = Signal()
        advance = ~d_valid[-1] | out_ready
        oy, ox = Signal(range(ho)), Signal(range(wo))
        m.d.comb += [oy.eq(py * s + wi), ox.eq(px * s + wj), slice_index.eq(q * kernels + j)]
        bias_row = data.ArrayLayout(signed(self._acc_bits), width)
        biases = [int(layer.bias[c]) if c < channels else 0 for c in order]
        m.submodules.bias = bias_mem = Memory(
            shape=bias_row, depth=passes * kernels,
            init=[biases[r * width:(r + 1) * width] for r in range(passes * kernels)])
        bias = bias_mem.read_port()
        m.d.comb += [
            self.acc.addr.eq((q * t.bank_h + _lut([v // t.rows % t.bank_h for v in range(ho)], oy))
                             * t.bank_w
                             + _lut([v // t.cols for v in range(wo)], ox)),
            self.acc.bank.eq(_lut([v % t.rows for v in range(ho)], oy) * t.cols
                             + _lut([v % t.cols for v in range(wo)], ox)),
            self.acc.en.eq(advance & go if self._ring else advance),
            bias.addr.eq(d_slice[-2] if latency > 1 else slice_index),
            bias.en.eq(advance),
        ]
        if self._by_kernel:
            m.d.comb += [self.acc.kernel.eq(j), self.acc.step.eq(advance)]
        else:
            m.d.comb += self.acc.clear.eq(go)
        with m.If(advance):
            m.d.sync += [d_valid[0].eq(go), d_slice[0].eq(slice_index), d_last[0].eq(at_end)]
            m.d.sync += [stage[i].eq(stage[i - 1]) for stage in (d_valid, d_slice, d_last)
                         for i in range(1, latency)]
            with m.If(go):
                step()
                with m.If(at_end):
                    m.d.sync += issuing.eq(0)
        with m.If(self.start):
            m.d.sync += [issuing.eq(1), py.eq(0), px.eq(0), wi.eq(0), wj.eq(0), q.eq(0), j.eq(0)]

        # Requantisation and pooling in walk order (channels past the layer's get m = 0 and
        # are dropped), then each output channel taken from its place in that order.
        rq = layer.requant
        padded = passes * kernels * width
        mult = [int(rq.multiplier[c]) if c < channels else 0 for c in order]
        shift = [int(rq.shift[c]) if c < channels else 0 for c in order]
        m.submodules.requant = requant = VectorRequantiser(
            padded, width, self._acc_bits, mult, shift, out_min=rq.out_min,
            out_max=rq.out_max, frac_bits=rq.frac_bits)
        m.submodules.pool = pool = VectorPool(padded, width, passes * kernels, s * s,
                                              frac_bits=rq.frac_bits)
        for e in range(width):
            m.d.comb += requant.i.payload.a[e].eq(self.acc.data[e] + bias.data[e])
        m.d.comb += [requant.i.valid.eq(d_valid[-1]), requant.i.payload.slice.eq(d_slice[-1]),
                     requant.i.payload.last.eq(d_last[-1]), out_ready.eq(requant.i.ready)]
        wiring.connect(m, requant.o, pool.i)
        place = {c: i for i, c in enumerate(order)}
        m.d.comb += [
            self.o.valid.eq(pool.o.valid),
            self.o.payload.last.eq(pool.o.payload.last),
            pool.o.ready.eq(self.o.ready),
        ] + [self.o.payload.values[c].eq(pool.o.payload.values[place[c]])
             for c in range(channels)]
        in_flight = Cat(*d_valid).any()
        if self._ring:
            m.d.comb += [self.busy.eq(in_flight), self.drained.eq(Mux(issuing, py, ho // s))]
        else:
            m.d.comb += self.busy.eq(issuing | in_flight)
        return m


class ChannelDrain(wiring.Component):
    """Emit one finished linear input ``width`` channels per cycle, in channel order.

    Channel ``c = (q * lanes + l) * n + j`` is sum ``q * n + j`` of lane ``l``
    (:class:`~.router.LaneAccumulators`). Beat ``b`` carries channels ``b *
    width .. b * width + width - 1``: since ``width`` divides ``n`` they are
    consecutive sums of one kernel group, which the lane's accumulators yield
    in one read (and clear), so each cycle reads exactly the channels due.
    With ``width = 1`` a beat is one channel (the order the global k-WTA and
    the argmax consume) and a scalar :class:`~cosparse.hw.requant.Requantiser`
    scales it; with ``width > 1`` (a linear layer before a wide global k-WTA)
    the beat is a vector and a :class:`~cosparse.hw.requant.VectorRequantiser`
    scales its ``width`` sums at once, so ``out_channels`` channels take
    ``ceil(out_channels / width)`` cycles and the drain keeps pace with an
    engine that accumulates faster than one channel per cycle.

    Parameters
    ----------
    layer : Linear
        Supplies ``n``, ``out_channels``, ``bias`` and ``requant`` (None: int32
        ``acc + bias`` out, ``width = 1`` only).
    lanes : int
        Groups per pass.
    tiling : Tiling
        The single-bank tiling of a linear layer (``depth = passes``).
    acc_bits : int
        Accumulator width.
    width : int
        Channels per beat; divides ``layer.n``.

    Ports
    -----
    start, busy :
        As for :class:`PositionDrain`.
    acc : :class:`~.router.SumPort` read/clear port into the idle buffer, ``width``
        sums a read.
    o : width 1: a dense int8 stream (``signed(8 + frac_bits)`` with the requantisation's
        fraction bits; int32 when ``layer.requant`` is None). Width above 1:
        ``dense_vector_layout(width, value_shape(frac_bits))``, ``ceil(out_channels /
        width)`` beats per input, ``last`` on the final one (the last group of a layer
        may have fewer than ``n`` kernels: the channels past ``out_channels`` in the
        final beat are padding).
    """

    def __init__(self, layer, lanes: int, tiling, acc_bits: int, width: int = 1):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1 \
                or layer.n % width:
            raise ValueError(f"layer {layer.name!r}: width must be a positive divisor of "
                             f"n = {layer.n}, got {width!r}")
        if layer.requant is None and width > 1:
            raise ValueError(f"layer {layer.name!r}: a wide drain needs requant (its output "
                             f"goes to a global k-WTA)")
        self._layer, self._lanes, self._t, self._acc_bits = layer, lanes, tiling, acc_bits
        self._width = width
        value = value_shape(layer.requant.frac_bits) if layer.requant is not None else signed(32)
        out = dense_layout(value) if width == 1 else dense_vector_layout(width, value)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "acc": Out(SumPort(lanes, tiling.depth * layer.n, acc_bits, width)),
            "o": Out(stream.Signature(out)),
        })

    def elaborate(self, platform):
        m = Module()
        layer, width = self._layer, self._width
        per_group = layer.n // width  # reads of one kernel group
        beats = -(-layer.out_channels // width)  # the last group may lack kernels
        b, j = Signal(range(beats)), Signal(range(per_group))
        lane = Signal(range(self._lanes))
        addr = Signal.like(self.acc.addr)  # (q * n) / width + j
        issuing = Signal()
        final = b == beats - 1

        # Two stages after the issue, advancing together (the read port holds its sums while
        # ``en`` is low): ``r`` when the sums read are on ``acc.data``, ``d`` when they are
        # registered (``d_sum``) beside their bias. The register keeps the selection of the
        # lane read (hw/engine/router.py) and the bias adder out of one path.
        r_valid, r_last, d_valid, d_last = Signal(), Signal(), Signal(), Signal()
        r_b, d_b = Signal.like(b), Signal.like(b)
        d_sum = Signal(self.acc.data.shape())
        out_ready = Signal()
        advance = ~d_valid | out_ready
        biases = [int(v) for v in layer.bias] + [0] * (beats * width - layer.out_channels)
        shape = signed(32) if width == 1 else data.ArrayLayout(signed(self._acc_bits), width)
        m.submodules.bias = bias_mem = Memory(
            shape=shape, depth=beats,
            init=biases if width == 1 else [biases[r * width:(r + 1) * width]
                                            for r in range(beats)])
        bias = bias_mem.read_port()
        m.d.comb += [
            self.acc.addr.eq(addr),
            self.acc.lane.eq(lane),
            self.acc.en.eq(advance & issuing),
            self.acc.clear.eq(1),
            bias.addr.eq(r_b),
            bias.en.eq(advance),
            self.busy.eq(issuing | r_valid | d_valid),
        ]
        with m.If(advance):
            m.d.sync += [r_valid.eq(issuing), r_b.eq(b), r_last.eq(final),
                         d_valid.eq(r_valid), d_b.eq(r_b), d_last.eq(r_last),
                         d_sum.eq(self.acc.data)]
            with m.If(issuing):
                m.d.sync += [b.eq(b + 1), j.eq(j + 1), addr.eq(addr + 1)]
                with m.If(j == per_group - 1):
                    m.d.sync += [j.eq(0), lane.eq(lane + 1), addr.eq(addr + 1 - per_group)]
                    with m.If(lane == self._lanes - 1):
                        m.d.sync += [lane.eq(0), addr.eq(addr + 1)]
                with m.If(final):
                    m.d.sync += issuing.eq(0)
        with m.If(self.start):
            m.d.sync += [issuing.eq(1), b.eq(0), j.eq(0), lane.eq(0), addr.eq(0)]

        rq = layer.requant
        if width == 1:
            a = Signal(signed(self._acc_bits))
            m.d.comb += a.eq(d_sum + bias.data)
            if rq is None:
                m.d.comb += [self.o.valid.eq(d_valid), self.o.payload.value.eq(a),
                             self.o.payload.last.eq(d_last), out_ready.eq(self.o.ready)]
                return m
            m.submodules.requant = requant = Requantiser(
                layer.out_channels, self._acc_bits, [int(v) for v in rq.multiplier],
                [int(v) for v in rq.shift], out_min=rq.out_min, out_max=rq.out_max,
                frac_bits=rq.frac_bits)
            m.d.comb += [requant.i.payload.a.eq(a), requant.i.payload.channel.eq(d_b)]
        else:
            m.submodules.requant = requant = VectorRequantiser(
                layer.out_channels, width, self._acc_bits, [int(v) for v in rq.multiplier],
                [int(v) for v in rq.shift], out_min=rq.out_min, out_max=rq.out_max,
                frac_bits=rq.frac_bits)
            m.d.comb += [requant.i.payload.a[e].eq(d_sum[e] + bias.data[e])
                         for e in range(width)]
            m.d.comb += requant.i.payload.slice.eq(d_b)
        m.d.comb += [requant.i.valid.eq(d_valid), requant.i.payload.last.eq(d_last),
                     out_ready.eq(requant.i.ready)]
        wiring.connect(m, requant.o, wiring.flipped(self.o))
        return m
