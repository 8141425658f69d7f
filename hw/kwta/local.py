"""Local k-WTA: the k largest of the C channel values at every position.

A convolution engine emits one position per beat, all ``C`` channels at
once (hw/layouts.py, dense vector), so the winners of a position are found
in parallel rather than by sorting a stream: channel ``c``'s rank is the
number of channels that beat it,

    rank[c] = #{ j : v[j] > v[c]  or  (v[j] == v[c] and j < c) }

and ``c`` wins iff ``rank[c] < k``. The comparison decides equal values by
channel, lower first: exactly docs/netspec.md's lower-index tie rule, and
exactly ``k`` channels win. That is ``C * (C - 1)`` comparators and ``C``
popcounts, registered in between (about 4k comparators for C = 64: cheap
next to an engine's multipliers), so a new position can enter every cycle.
The winners then leave as sparse beats through a
:class:`~cosparse.hw.sparsify.PositionEmitter`, one per cycle, in ascending
channel order.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_vector_layout, sparse_layout
from ..sparsify import PositionEmitter

__all__ = ["LocalKWTA"]


def _check_kwta(shape, k, skip_zeros, dims):
    sparse_layout(shape)  # validates the shape
    if len(shape) not in dims:
        raise TypeError(f"shape must have {' or '.join(map(str, dims))} dimensions, got {shape!r}")
    if not isinstance(skip_zeros, bool):
        raise TypeError(f"skip_zeros must be a bool, got {skip_zeros!r}")


def _popcount(bits):
    """Number of set bits, as a balanced adder tree (widths grow by one per level)."""
    if not bits:
        return Const(0, 1)
    while len(bits) > 1:
        bits = [bits[i] + bits[i + 1] if i + 1 < len(bits) else bits[i]
                for i in range(0, len(bits), 2)]
    return bits[0]


class LocalKWTA(wiring.Component):
    """Keep the ``k`` largest of the ``C`` channels at each position, as a sparse stream.

    Parameters
    ----------
    shape : tuple
        ``(C, H, W)``.
    k : int
        Winners per position, ``1 <= k <= C``.
    skip_zeros : bool
        True: emit each position's non-zero winners, channels ascending (a
        winner of value 0 is dropped, as it contributes nothing). False
        (dense baseline): emit all ``C`` channels of every position, losers
        as 0.

    Ports
    -----
    i : ``In(stream.Signature(dense_vector_layout(C)))``
        One position per beat, raster order, ``last`` on the input's final
        position. An input must have exactly ``H*W`` beats (not checked).
    o : ``Out(stream.Signature(sparse_layout(shape)))``
        ``value``, ``c``, ``y``, ``x``, ``last`` on the input's final beat;
        an input without a non-zero winner is the single value-0 beat.

    Throughput: a position per cycle in; out, one beat per non-zero winner
    (at least one cycle per position; ``C`` with ``skip_zeros`` False).
    Latency: three cycles to the emitter.
    """

    def __init__(self, shape: tuple, k: int, skip_zeros: bool = True):
        _check_kwta(shape, k, skip_zeros, dims=(3,))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[0]:
            raise ValueError(f"k must be an integer in [1, {shape[0]}] (the channels), got {k!r}")
        self._shape, self._k, self._skip = shape, k, skip_zeros
        super().__init__({"i": In(stream.Signature(dense_vector_layout(shape[0]))),
                          "o": Out(stream.Signature(sparse_layout(shape)))})

    def elaborate(self, platform):
        m = Module()
        channels, k = self._shape[0], self._k
        m.submodules.emitter = emitter = PositionEmitter(self._shape, self._skip)
        wiring.connect(m, emitter.o, wiring.flipped(self.o))

        # Stage 1: the position's values. Stage 2: who beats whom. Then rank and mask,
        # straight into the emitter's holding register.
        v1, v2 = Signal(), Signal()
        p1 = Signal(dense_vector_layout(channels))
        p2 = Signal(dense_vector_layout(channels))
        beaten = Signal(data.ArrayLayout(channels, channels))  # beaten[c] bit j: j beats c
        take2 = ~v2 | emitter.i.ready
        take1 = ~v1 | take2
        m.d.comb += self.i.ready.eq(take1)
        with m.If(take1):
            m.d.sync += [v1.eq(self.i.valid), p1.eq(self.i.payload)]
        with m.If(take2):
            m.d.sync += [v2.eq(v1), p2.eq(p1)]
            for c in range(channels):
                value = p1.values[c]
                bits = [(p1.values[j] >= value) if j < c else (p1.values[j] > value)
                        if j > c else Const(0, 1) for j in range(channels)]
                m.d.sync += beaten[c].eq(Cat(*bits))

        wins, kept = [], []
        for c in range(channels):
            rank = _popcount([beaten[c][j] for j in range(channels) if j != c])
            win = Signal(name=f"win{c}")
            m.d.comb += win.eq(rank < k)
            value = p2.values[c]
            wins.append(win & (value != 0) if self._skip else Const(1, 1))
            kept.append(Mux(win, value, 0))
        m.d.comb += [emitter.i.valid.eq(v2), emitter.i.payload.last.eq(p2.last),
                     emitter.i.payload.mask.eq(Cat(*wins))]
        for c in range(channels):
            m.d.comb += emitter.i.payload.values[c].eq(kept[c])
        return m
