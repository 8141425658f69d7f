"""Linear engine: each non-zero input touches every packed group once.

The sparse input carries ``index`` (1-D input) or ``(c, y, x)`` (the
flattened output of a convolution); the scatter turns it into the fan-in
index ``f = c*H*W + y*W + x`` and emits one work item per pass, so an input
costs ``ceil(groups / lanes)`` cycles and a layer ``nonzero_inputs`` times
that. A linear layer is the ``kernel = 1`` case of :mod:`.tiling`: one
bank, one output position.
"""

from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..layouts import dense_layout, dense_vector_layout, sparse_layout, tensor_size, value_shape
from .drain import ChannelDrain
from .multiply import item_layout
from .pipeline import PackedEngine
from .router import LaneAccumulators
from .tiling import Tiling
from .weights import id_block

__all__ = ["LinearScatter", "LinearEngine"]


class LinearScatter(wiring.Component):
    """Sparse activations -> one work item per pass, weight word ``f * passes + q``.

    Items leave through a register (one cycle of latency, one item per cycle), so the
    address computed here does not share a path with the weight memory read behind.

    Parameters
    ----------
    in_shape : (F,) or (C, H, W)
        Shape of the activation tensor as it arrives (flattened by the layer).
    tiling : Tiling
        The layer's single-bank tiling (``kernel = offsets = 1``).
    block : int
        Fan-in indices sharing one kernel-id word (a ``block`` pattern,
        :func:`~.weights.id_block`; a power of two): each item also carries the
        id word ``(f // block) * passes + q``. 1: ids are in the weight word.
    """

    def __init__(self, in_shape: tuple, tiling: Tiling, block: int = 1):
        if not isinstance(in_shape, tuple) or len(in_shape) not in (1, 3):
            raise TypeError(f"in_shape must be a tuple (F,) or (C, H, W), got {in_shape!r}")
        if not isinstance(tiling, Tiling) or tiling.kernel != 1 or tiling.out_hw != (1, 1):
            raise TypeError(f"tiling must be a Tiling of kernel 1 and output (1, 1), "
                            f"got {tiling!r}")
        if not isinstance(block, int) or block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, got {block!r}")
        self._shape, self._passes, self._block = in_shape, tiling.passes, block
        size = tensor_size(in_shape)
        id_words = -(-size // block) * tiling.passes if block > 1 else 0
        super().__init__({
            "i": In(stream.Signature(sparse_layout(in_shape))),
            "o": Out(stream.Signature(item_layout(tiling, size * tiling.passes, id_words))),
            "busy": Out(1),
        })

    def _flat(self, act):
        if len(self._shape) == 1:
            return act.index
        _, h, w = self._shape
        return act.c * (h * w) + act.y * w + act.x

    def elaborate(self, platform):
        m = Module()
        act = Signal(self.i.payload.shape())
        q = Signal(range(self._passes))
        busy = Signal()
        at_end = q == self._passes - 1
        # The item is registered on its way out, and its weight (and id) word counts up from
        # the one computed when the input is taken, so neither the address arithmetic nor
        # the weight memory behind share a path with the other.
        item = Signal.like(self.o.payload)
        word = Signal.like(item.word)
        advance = ~self.o.valid | self.o.ready
        m.d.comb += [
            self.busy.eq(busy | self.o.valid),
            item.value.eq(act.value),
            item.word.eq(word),
            item.q.eq(q),
            item.rows[0].ok.eq(1),
            item.cols[0].ok.eq(1),
            item.last.eq(act.last & at_end),
            self.i.ready.eq(~busy | (advance & at_end)),
        ]
        taken = self.i.payload
        if self._block > 1:
            shift = self._block.bit_length() - 1
            ids = Signal.like(item.ids)
            m.d.comb += item.ids.eq(ids)
            with m.If(busy & advance):
                m.d.sync += ids.eq(ids + 1)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += ids.eq((self._flat(taken) >> shift) * self._passes)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(busy), self.o.payload.eq(item)]
        with m.If(busy & advance):
            m.d.sync += [q.eq(q + 1), word.eq(word + 1)]
            with m.If(at_end):
                m.d.sync += [q.eq(0), busy.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [act.eq(taken), busy.eq(1), q.eq(0),
                         word.eq(self._flat(taken) * self._passes)]
        return m


class LinearEngine(PackedEngine):
    """A linear layer as a sparse-in, dense-out engine.

    Parameters
    ----------
    layer : Linear
        The NetSpec layer.
    config : LayerConfig
        Lanes, accumulator width and drain ``width`` (``offsets`` must be 1).
    in_shape : tuple
        Shape of the arriving activations: ``(F,)``, or ``(C, H, W)`` after a convolution.

    Ports
    -----
    i : sparse activations of ``in_shape``.
    o : dense int8 outputs in index order (``signed(8 + frac_bits)`` with the
        requantisation's fraction bits; int32 logits when ``layer.requant`` is None);
        with ``config.width > 1`` a ``dense_vector_layout(width, ...)`` beat of ``width``
        consecutive outputs (:class:`~.drain.ChannelDrain`).
    busy : high while any input is being accumulated or drained.
    """

    def __init__(self, layer, config, in_shape: tuple | None = None):
        in_shape = tuple(layer.in_shape) if in_shape is None else tuple(in_shape)
        if tensor_size(in_shape) != layer.in_features:
            raise ValueError(f"in_shape {in_shape!r} has {tensor_size(in_shape)} elements; "
                             f"layer {layer.name!r} takes {layer.in_features}")
        if config.offsets != 1:
            raise ValueError(f"layer {layer.name!r}: a linear layer has one offset, "
                             f"got offsets = {config.offsets!r}")
        tiling = Tiling(1, 1, (1, 1), config.passes(layer.groups))
        value = value_shape(layer.requant.frac_bits) if layer.requant is not None else signed(32)
        width = config.width
        out = dense_layout(value) if width == 1 else dense_vector_layout(width, value)
        drain = ChannelDrain(layer, config.lanes, tiling, config.acc_bits, width)
        super().__init__(layer, config, LinearScatter(in_shape, tiling, id_block(layer)), tiling,
                         LaneAccumulators(layer.n, config.lanes, tiling, config.acc_bits,
                                          layer.weight_bits, width),
                         drain, out)
