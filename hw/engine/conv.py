"""Convolution engine: each non-zero input is scattered to the outputs it reaches.

Input ``(c, y, x)`` contributes to output ``(oy, ox)`` with ``oy*s + ky - p
= y`` and ``ox*s + kx - p = x`` (stride ``s``, zero padding ``p``) through
fan-in index ``f = c*K*K + ky*K + kx``, for every kernel offset that lands
inside the output. The scatter walks the offset tiles of :mod:`.tiling` that hold
at least one such offset, one work item per tile and pass; with the whole
kernel as one tile (``offsets = K*K``) an input costs one cycle per pass,
so an engine's cycles are its non-zero inputs times its passes and follow
the activation density.
"""

from amaranth import Array, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_vector_layout, sparse_layout, value_shape
from .drain import PositionDrain
from .kernel_ring import KernelRingAccumulators
from .multiply import item_layout
from .pipeline import PackedEngine
from .ring import RowWindow, ring_window
from .router import Accumulators
from .tiling import Tiling
from .weights import id_block

__all__ = ["ConvScatter", "ConvEngine", "conv_tiling"]


def _lut(values, index):
    """``values[index]`` for a constant table (a small ROM in logic)."""
    return Array(Const(v, range(max(values) + 1)) for v in values)[index]


class ConvScatter(wiring.Component):
    """Sparse ``(value, c, y, x)`` stream -> one work item per useful offset tile and pass.

    Which tiles an input coordinate reaches and where each tile's offsets
    land are constant tables per axis (:meth:`~.tiling.Tiling.axis`), small
    ROMs indexed by the coordinate (and the tile): the same tables for any
    stride and padding. An input that reaches no output at all (stride above
    1) still sends one item with no write, so an input's ``last`` always
    reaches the accumulators.

    Parameters
    ----------
    in_shape : (C, H, W)
        Input tensor shape.
    tiling : Tiling
        Kernel size, stride, padding, offset tile, output size and passes.
    block : int
        Input channels sharing one kernel-id word (a ``block`` pattern,
        :func:`~.weights.id_block`; a power of two): each item also carries the
        id word, the weight word's address with channel ``c`` replaced by
        ``c // block``. 1: ids are in the weight word.
    """

    def __init__(self, in_shape: tuple, tiling: Tiling, block: int = 1):
        if not isinstance(in_shape, tuple) or len(in_shape) != 3:
            raise TypeError(f"in_shape must be a tuple (C, H, W), got {in_shape!r}")
        if not isinstance(tiling, Tiling):
            raise TypeError(f"tiling must be a Tiling, got {tiling!r}")
        c, h, w = in_shape
        k, s, p = tiling.kernel, tiling.stride, tiling.padding
        if not 1 <= k <= min(h, w) + 2 * p \
                or tiling.out_hw != ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1):
            raise ValueError(f"tiling (kernel {k}, stride {s}, padding {p}, output "
                             f"{tiling.out_hw}) does not fit the input {in_shape!r}")
        if not isinstance(block, int) or block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, got {block!r}")
        self._shape, self._t, self._block = in_shape, tiling, block
        per_channel = tiling.tiles() * tiling.passes * tiling.col_copies
        super().__init__({
            "i": In(stream.Signature(sparse_layout(in_shape))),
            "o": Out(stream.Signature(item_layout(
                tiling, c * per_channel, -(-c // block) * per_channel if block > 1 else 0))),
            "busy": Out(1),
        })

    @staticmethod
    def _axis(m, coord, tile, table, span, items, name):
        """Drive one axis of the item from ``table``; returns its first/last/next-tile tables.

        ``coord`` is the input coordinate, ``tile`` the current tile along the
        axis; ``items[b]`` gets bank row/column ``b``'s offset, entry and ``ok``.
        """
        count = len(table.slots[0])
        index = Signal(range(len(table.slots) * count), name=f"{name}_index")
        m.d.comb += index.eq(coord * count + tile)
        for b in range(span):
            flat = [slots[t][b] for slots in table.slots for t in range(count)]
            m.d.comb += [
                items[b].ok.eq(_lut([int(ok) for ok, _, _ in flat], index)),
                items[b].src.eq(_lut([src for _, src, _ in flat], index)),
                items[b].addr.eq(_lut([addr for _, _, addr in flat], index)),
            ]
        first = [tiles[0] if tiles else 0 for tiles in table.tiles]
        last = [tiles[-1] if tiles else 0 for tiles in table.tiles]
        # The tile after ``t`` that the coordinate reaches (where ``t`` is not its last).
        after = [next((u for u in tiles if u > t), t) for tiles in table.tiles
                 for t in range(count)]
        return first, last, _lut(after, index), index

    def elaborate(self, platform):
        m = Module()
        t = self._t
        _, h, w = self._shape
        act = Signal(self.i.payload.shape())
        ty, tx = Signal(range(t.tiles_y)), Signal(range(t.tiles_x))
        q = Signal(range(t.passes))
        busy = Signal()
        item = self.o.payload
        ty_lo, ty_hi, ty_next, _ = self._axis(m, act.y, ty, t.rows_axis(h), t.rows, item.rows,
                                              "row")
        tx_lo, tx_hi, tx_next, col = self._axis(m, act.x, tx, t.cols_axis(w), t.cols, item.cols,
                                                "col")
        # Which stored copy of the word has this (column, tile)'s offsets in bank order.
        phase = _lut([p for row in t.col_phase for p in row], col) if t.col_copies > 1 else 0
        tx_last, ty_last = tx == _lut(tx_hi, act.x), ty == _lut(ty_hi, act.y)
        at_end = (q == t.passes - 1) & tx_last & ty_last

        def word(channel):
            return (((channel * t.tiles_y + ty) * t.tiles_x + tx) * t.passes + q) \
                * t.col_copies + phase

        if self._block > 1:
            m.d.comb += item.ids.eq(word(act.c >> (self._block.bit_length() - 1)))
        m.d.comb += [
            self.busy.eq(busy),
            self.o.valid.eq(busy),
            item.value.eq(act.value),
            item.word.eq(word(act.c)),
            item.q.eq(q),
            item.last.eq(act.last & at_end),
            self.i.ready.eq(~busy | (self.o.ready & at_end)),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(q != t.passes - 1):
                m.d.sync += q.eq(q + 1)
            with m.Elif(~tx_last):
                m.d.sync += [q.eq(0), tx.eq(tx_next)]
            with m.Elif(~ty_last):
                m.d.sync += [q.eq(0), tx.eq(_lut(tx_lo, act.x)), ty.eq(ty_next)]
            with m.Else():
                m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [act.eq(self.i.payload), busy.eq(1), q.eq(0),
                         ty.eq(_lut(ty_lo, self.i.payload.y)), tx.eq(_lut(tx_lo, self.i.payload.x))]
        return m


def conv_tiling(layer, config, pool: int, position_major: bool) -> Tiling:
    """The :class:`~.tiling.Tiling` of a conv engine (shared with the cycle model).

    A ring when the input is position-major; the weights stored
    column-rotated (``in_width``) when the memory holds more than one word,
    where a few more words of the same width cost no more block RAM, while a
    one-word memory (a one-channel layer in one pass) is constant and its
    column multiplexers fold away in synthesis.
    """
    c, _, w = layer.in_shape
    shape = (layer.kernel, config.offsets, tuple(layer.out_shape[1:]),
             config.passes(layer.groups))
    options = dict(window=ring_window(layer.kernel, pool) if position_major else None,
                   stride=layer.stride, padding=layer.padding)
    tiling = Tiling(*shape, **options)
    if c * tiling.tiles() * tiling.passes == 1:
        return tiling
    return Tiling(*shape, **options, in_width=w)


class ConvEngine(PackedEngine):
    """A conv2d layer (with an optional fused max-pool) as a sparse-in, dense-vector-out engine.

    Parameters
    ----------
    layer : Conv2d
        The NetSpec layer; it must requantise (a convolution cannot be the
        last, int32, layer in hardware).
    config : LayerConfig
        Lanes, offsets per cycle, accumulator width and organisation
        (``accumulators``: word, :mod:`.router`; kernel, :mod:`.kernel_ring`,
        position-major input only).
    pool : int
        Max-pool window fused into the drain (1: none).
    position_major : bool
        The input arrives position-major (raster order of positions, the
        channels of a position together): the engine then keeps a ring of
        ``K + pool`` output rows or more, single-buffered, and drains the rows
        the input has passed while it goes on (:mod:`.ring`). Otherwise (a
        first layer with ``C > 1`` in NetSpec flat order, channel-major) every
        output position is held, double-buffered.

    Ports
    -----
    i : sparse ``(value, c, y, x)`` activations of ``layer.in_shape``.
    o : ``dense_vector_layout(out_channels, value_shape(frac_bits))``: one
        beat per (pooled) output position in raster order, all channels;
        int8, or int8 with the requantisation's ``frac_bits`` fraction bits.
    busy : high while any input is being accumulated or drained.
    """

    def __init__(self, layer, config, pool: int = 1, position_major: bool = False):
        if layer.requant is None:
            raise ValueError(f"layer {layer.name!r}: a conv2d without requant (int32 outputs) "
                             f"is not built")
        if not isinstance(position_major, bool):
            raise TypeError(f"position_major must be a bool, got {position_major!r}")
        in_shape = tuple(layer.in_shape)
        tiling = conv_tiling(layer, config, pool, position_major)
        scatter = ConvScatter(in_shape, tiling, id_block(layer))
        by_kernel = config.accumulators == "kernel"
        if by_kernel and not position_major:
            raise ValueError(f"layer {layer.name!r}: kernel accumulators need position-major "
                             f"input (a ring); use accumulators 'word'")
        drain = PositionDrain(layer, config.lanes, tiling, pool, config.acc_bits,
                              ring=position_major, by_kernel=by_kernel)
        if by_kernel:
            accumulators = KernelRingAccumulators(layer.n, config.lanes, tiling, config.acc_bits,
                                                  layer.weight_bits)
        else:
            accumulators = Accumulators(layer.n, config.lanes, tiling, config.acc_bits,
                                        layer.weight_bits, buffers=1 if position_major else 2)
        super().__init__(layer, config, scatter, tiling, accumulators, drain,
                         dense_vector_layout(layer.out_channels,
                                             value_shape(layer.requant.frac_bits)),
                         window=RowWindow(in_shape, tiling, pool) if position_major else None)
