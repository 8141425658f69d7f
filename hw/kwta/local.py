"""Local k-WTA: the k largest of the C channel values at every position.

An engine's dense output is position-major (hw/layouts.py), so the C values
of one position arrive back to back and a streaming insertion sorter can
rank them as they come: a k-entry list, kept sorted (value descending,
channel ascending), takes one value per cycle with k parallel comparisons.
A value is inserted ahead of an entry only if it is *strictly* greater, so
an equal value that arrived earlier (a lower channel) stays ahead: exactly
docs/netspec.md's lower-index tie rule. The k-th entry falls off the end.

The list is double buffered: when a position is complete its winners move
to an output buffer in one cycle, and the next position's values enter the
sorter while the previous winners stream out through a Compactor.
"""

from amaranth import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import coordinate_bits, dense_layout, sparse_layout
from ..sparsify import Compactor, CoordinateCounter

__all__ = ["LocalKWTA"]


def _check_kwta(shape, k, skip_zeros, dims):
    sparse_layout(shape)  # validates the shape
    if len(shape) not in dims:
        raise TypeError(f"shape must have {' or '.join(map(str, dims))} dimensions, got {shape!r}")
    if not isinstance(skip_zeros, bool):
        raise TypeError(f"skip_zeros must be a bool, got {skip_zeros!r}")


class _Entries:
    """``count`` registers of (value, channel, valid): one sorted winner list."""

    def __init__(self, count, channel_bits, name):
        self.value = [Signal(signed(8), name=f"{name}{j}_value") for j in range(count)]
        self.channel = [Signal(channel_bits, name=f"{name}{j}_channel") for j in range(count)]
        self.valid = [Signal(name=f"{name}{j}_valid") for j in range(count)]


class LocalKWTA(wiring.Component):
    """Keep the ``k`` largest of the ``C`` channels at each position, as a sparse stream.

    Parameters
    ----------
    shape : tuple
        ``(C, H, W)``.
    k : int
        Winners per position, ``1 <= k <= C``.
    skip_zeros : bool
        True: emit each position's non-zero winners in rank order (value
        descending, then channel ascending); a winner of value 0 is dropped,
        as it contributes nothing. False (dense baseline): emit all ``C``
        channels of every position in channel order, losers as 0.

    Ports
    -----
    i : ``In(stream.Signature(dense_layout()))``
        Position-major values (for each ``(y, x)`` in raster order, its ``C``
        channels ascending), ``last`` on the input's final value. An input
        must have exactly ``C*H*W`` beats (not checked); ``last`` closes the
        current position and restarts the coordinates.
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        ``value``, ``c``, ``y``, ``x``, ``last`` on the input's final beat;
        an input without a non-zero winner is the single value-0 beat.

    Throughput: one input value per cycle, so ``C*H*W`` cycles per input
    (the output of a position, ``k`` or ``C`` beats, overlaps the next
    position's input), plus a latency of ``k + 3`` cycles (``C + 3`` when
    ``skip_zeros`` is False).
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True):
        _check_kwta(shape, k, skip_zeros, dims=(3,))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[0]:
            raise ValueError(f"k must be an integer in [1, {shape[0]}] (the channels), got {k!r}")
        self._shape, self._k, self._skip = shape, k, skip_zeros
        super().__init__({"i": In(stream.Signature(dense_layout())),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, height, width = self._shape
        k = self._k
        cbits = coordinate_bits(channels)
        m.submodules.counter = counter = CoordinateCounter(self._shape, "position_major")
        m.submodules.compactor = compactor = Compactor(self._shape, self._skip)
        wiring.connect(m, compactor.o, wiring.flipped(self.o))

        sort = _Entries(k, cbits, "sort")
        sort_full = Signal()        # the sorter holds a complete position
        sort_y, sort_x = Signal(range(height)), Signal(range(width))
        sort_last = Signal()
        out = _Entries(k, cbits, "out")
        out_busy = Signal()
        out_y, out_x = Signal(range(height)), Signal(range(width))
        out_last = Signal()
        beats = k if self._skip else channels
        step = Signal(range(beats))

        # Output side: walk the winner buffer into the Compactor.
        final = step == beats - 1
        beat = compactor.i.payload
        if self._skip:
            m.d.comb += [beat.value.eq(Mux(Array(out.valid)[step], Array(out.value)[step], 0)),
                         beat.c.eq(Array(out.channel)[step])]
        else:
            # At most one entry holds a given channel: a k-input select.
            value = 0
            for j in range(k):
                value = Mux(out.valid[j] & (out.channel[j] == step), out.value[j], value)
            m.d.comb += [beat.value.eq(value), beat.c.eq(step)]
        m.d.comb += [beat.y.eq(out_y), beat.x.eq(out_x), beat.last.eq(out_last & final),
                     compactor.i.valid.eq(out_busy)]
        emitted = compactor.i.valid & compactor.i.ready
        with m.If(emitted):
            m.d.sync += step.eq(Mux(final, 0, step + 1))
            with m.If(final):
                m.d.sync += out_busy.eq(0)

        # Hand a complete position over when the output buffer is (about to be) free.
        transfer = sort_full & (~out_busy | (emitted & final))
        with m.If(transfer):
            m.d.sync += [sort_full.eq(0), out_busy.eq(1), out_y.eq(sort_y), out_x.eq(sort_x),
                         out_last.eq(sort_last)]
            m.d.sync += [dst.eq(src) for dst, src in zip(out.value + out.channel + out.valid,
                                                         sort.value + sort.channel + sort.valid)]

        # Input side: insert each value at its rank.
        value, channel = self.i.payload.value, counter.coord.c
        taken = self.i.valid & self.i.ready
        done = (channel == channels - 1) | self.i.payload.last
        m.d.comb += [self.i.ready.eq(~sort_full | transfer),
                     counter.advance.eq(taken), counter.restart.eq(taken & self.i.payload.last)]
        with m.If(taken):
            with m.If(channel == 0):
                m.d.sync += [sort.value[0].eq(value), sort.channel[0].eq(channel),
                             sort.valid[0].eq(1)]
                m.d.sync += [valid.eq(0) for valid in sort.valid[1:]]
            with m.Else():
                ahead = [~sort.valid[j] | (value > sort.value[j]) for j in range(k)]
                for j in range(k):
                    # ``ahead`` is monotonic along the sorted list: the new value
                    # lands where it first holds, and the entries behind shift down.
                    with m.If(ahead[j] if j == 0 else ahead[j] & ~ahead[j - 1]):
                        m.d.sync += [sort.value[j].eq(value), sort.channel[j].eq(channel),
                                     sort.valid[j].eq(1)]
                    if j:
                        with m.Elif(ahead[j - 1]):
                            m.d.sync += [sort.value[j].eq(sort.value[j - 1]),
                                         sort.channel[j].eq(sort.channel[j - 1]),
                                         sort.valid[j].eq(sort.valid[j - 1])]
            with m.If(done):
                m.d.sync += [sort_full.eq(1), sort_y.eq(counter.coord.y), sort_x.eq(counter.coord.x),
                             sort_last.eq(self.i.payload.last)]
        return m
