"""Row window: when the rows of a conv engine's ring are final, and when an input may go on.

A conv engine whose input arrives position-major (raster order of ``(y, x)``,
all channels of a position together: the output of a conv engine's k-WTA or
Sparsifier, or a one-channel first layer) needs only a few output rows at a
time. Input row ``y`` reaches output rows ``y - K + 1 .. y`` only (stride
``s``, padding ``p``: ``ceil((y + p - K + 1) / s) .. floor((y + p) / s)``,
at most ``K`` rows), so once an input of row ``y`` is seen, every output row
below the first of these is final. The accumulators then hold a ring of
``ring_rows`` output rows (:class:`~.tiling.Tiling` ``window``,
single-buffered, :mod:`.router`),
and the drain reads (and clears) each group of ``pool`` output rows once it
is final, while later rows accumulate. This unit, between the engine's input
and its scatter, keeps the two in step:

- ``final``, the number of pool-row groups whose sums are complete: group
  ``P`` (rows ``P*pool .. P*pool + pool - 1``) is final when a beat of row
  ``y`` whose first output row is past the group (``y >= P*pool + pool - 1
  + K`` at stride 1, no padding) waits at the scatter after every earlier
  beat's items have left it (rows without any input need no beat of their
  own: the next beat's row, or the input's end, passes them), and after the
  input's last item, every group. The count reaches the drain
  :data:`SETTLE` cycles later, when those items' sums are written.
- A beat of row ``y`` writes output rows up to ``min(floor((y + p) / s),
  Ho - 1)``, which
  share ring rows with the rows ``ring_rows`` below them, so it waits until
  the drain has read every group that holds one of those. The ring holds at
  least ``K + pool`` rows, so that wait never depends on a group that this
  beat itself makes final (``K + pool - 1`` would do, with a wait at every
  group).
- After an input's last beat, the next input waits until the drain has read
  every group: its rows start again at 0, in ring rows the previous input's
  tail may still hold. The drain reads only in cycles the
  read-modify-write leaves a bank free, so while the scatter streams
  without a gap the drain advances only in these waits, and an engine that
  is never starved takes about its accumulate plus its drain cycles per
  input (hw/generate.py, ``summary``).
"""

from amaranth import Array, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import sparse_layout
from .multiply import LATENCY as MULTIPLY_LATENCY

__all__ = ["SETTLE", "RowWindow", "ring_window", "final_groups"]

#: Cycles from a work item entering the multiplier to its sums being readable: the
#: multiplier's latency, the read and the write of the read-modify-write.
SETTLE = MULTIPLY_LATENCY + 2


def ring_window(kernel: int, pool: int) -> int:
    """Output rows a ring must hold: the ``kernel`` rows an input row reaches and a group."""
    return kernel + pool


def final_groups(in_shape: tuple, tiling, pool: int) -> list:
    """Pool-row groups whose sums are final once a beat of input row ``y`` waits, per ``y``.

    Input row ``y`` reaches output rows ``ceil((y + p - K + 1) / s) .. floor((y + p) / s)``,
    so every group wholly above the first of them can take no more products. The cycle
    model (``cosparse.hw.generate``) uses the same table as :class:`RowWindow`.
    """
    _, h, _ = in_shape
    groups = tiling.out_hw[0] // pool
    s, p, kernel = tiling.stride, tiling.padding, tiling.kernel
    return [min(groups, max(0, -(-(y + p - kernel + 1) // s)) // pool) for y in range(h)]


def _lut(values, index):
    """``values[index]`` for a constant table."""
    return Array(Const(v, range(max(values) + 1)) for v in values)[index]


class RowWindow(wiring.Component):
    """Gate in front of a ring conv engine's scatter; counts the final pool-row groups.

    Parameters
    ----------
    in_shape : (C, H, W)
        The engine's input shape.
    tiling : Tiling
        The engine's tiling with a ``window`` (``ring_rows``).
    pool : int
        Pool window of the drain: a group is ``pool`` output rows.

    Ports
    -----
    i : the engine's sparse input, position-major.
    o : to the scatter; ``o.ready`` high means every earlier beat's items have left it.
    last_item : the scatter's item marked ``last`` enters the multiplier.
    final : groups whose sums are written (to the drain).
    drained : groups the drain has read (from the drain).
    start : pulse to the drain: the input is done, start the next at group 0.
    busy : an input has begun and is not yet wholly drained.
    """

    def __init__(self, in_shape: tuple, tiling, pool: int):
        _, h, _ = in_shape
        ho = tiling.out_hw[0]
        kernel, rows = tiling.kernel, tiling.ring_rows
        if rows < min(ho, ring_window(kernel, pool) - 1):
            raise ValueError(f"a ring of {rows} output rows cannot hold a {kernel}-row kernel "
                             f"and a pool of {pool} (needs {ring_window(kernel, pool) - 1})")
        self._groups = groups = ho // pool
        self._final = final_groups(in_shape, tiling, pool)
        # Groups that must be read before a beat of row y enters.
        s, p = tiling.stride, tiling.padding
        self._need = [min(groups, max(0, (min((y + p) // s, ho - 1) - rows) // pool + 1))
                      for y in range(h)]
        super().__init__({
            "i": In(stream.Signature(sparse_layout(in_shape))),
            "o": Out(stream.Signature(sparse_layout(in_shape))),
            "last_item": In(1),
            "final": Out(range(groups + 1)),
            "drained": In(range(groups + 1)),
            "start": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        groups = self._groups
        y = self.i.payload.y
        ending = Signal()  # the input's last beat has entered; wait for the drain
        active = Signal()  # an input has begun
        enter = ~ending & (_lut(self._need, y) <= self.drained)
        m.d.comb += [
            self.o.payload.eq(self.i.payload),
            self.o.valid.eq(self.i.valid & enter),
            self.i.ready.eq(self.o.ready & enter),
        ]
        # ``final`` as the scatter sees it, then delayed until the sums are written.
        seen = Signal(range(groups + 1))
        stages = [seen]
        for index in range(SETTLE - 1):
            stage = Signal(range(groups + 1), name=f"final_{index}")
            m.d.sync += stage.eq(stages[-1])
            stages.append(stage)
        m.d.comb += self.final.eq(stages[-1])
        with m.If(self.i.valid & self.o.ready & ~ending):
            m.d.sync += seen.eq(_lut(self._final, y))
        with m.If(self.last_item):
            m.d.sync += seen.eq(groups)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += active.eq(1)
            with m.If(self.i.payload.last):
                m.d.sync += ending.eq(1)
        done = ending & (self.drained == groups)
        m.d.comb += [self.start.eq(done), self.busy.eq(active)]
        with m.If(done):
            m.d.sync += [ending.eq(0), active.eq(0)] + [stage.eq(0) for stage in stages]
        return m
