"""Packed-kernel multiply: one weight-word read, ``offsets x lanes`` products per work item.

A work item is one non-zero activation, one offset tile and one pass. The
scatter has already worked out, for every accumulator bank, which offset of
the tile lands in it (``src``), at which entry, and whether that output
exists (``ok``); see :mod:`.tiling`. This unit reads the word of the tile,
moves each offset's weights to the bank its output lives in (a rotation by
the activation's position modulo the tile shape: rows first, then columns,
two small multiplexers instead of one ``offsets``-way one; the columns need
none where the weight memory stores each word column-rotated,
:class:`~.tiling.Tiling` ``in_width``) and multiplies.

Weights are signed ``weight_bits`` integers (the layer's, 8 by default) and
activations int8, so each product is a signed ``8 + weight_bits`` bit value:
int16 for 8-bit weights, 24 bits for 16-bit ones (still one DSP48/DSP58
multiply, a wider product register and product stream), 12 bits for 4-bit
ones.
"""

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..multiplier import RegisteredMultiplier, is_ecp5
from .weights import (check_weight_bits, id_block, id_words, kernel_id_bits, lane_layout,
                      weight_words, word_layout)

__all__ = ["LATENCY", "bits", "item_layout", "product_bits", "product_layout", "PackedMultiply"]

#: Cycles from an item at :class:`PackedMultiply`'s input to its products at the output.
LATENCY = 4


def bits(extent: int) -> int:
    """Bits of an unsigned index ranging over ``extent`` values (at least 1)."""
    return max(1, ceil_log2(extent))


def item_layout(tiling, words: int, id_words: int = 0) -> data.StructLayout:
    """One unit of work: activation ``value``, weight ``word`` address, pass ``q``, and per
    bank row (``rows``) and bank column (``cols``) the tile offset that lands there
    (``src``), its entry coordinate in the bank (``addr``) and whether it exists (``ok``);
    ``last`` marks the final item of an input. With ``id_words`` (a block pattern's
    kernel-id memory, :func:`~.weights.id_words`) also the id word address ``ids``."""
    def axis(extent, span):
        return data.ArrayLayout(data.StructLayout({
            "src": unsigned(bits(extent)), "addr": unsigned(bits(span)), "ok": unsigned(1)}),
            extent)
    fields = {
        "value": signed(8), "word": unsigned(bits(words)), "q": unsigned(bits(tiling.passes)),
        "rows": axis(tiling.rows, tiling.bank_h), "cols": axis(tiling.cols, tiling.bank_w),
        "last": unsigned(1)}
    if id_words:
        fields["ids"] = unsigned(bits(id_words))
    return data.StructLayout(fields)


def product_bits(weight_bits: int = 8) -> int:
    """Signed width of an int8 activation times a ``weight_bits`` weight: ``8 + weight_bits``."""
    return 8 + check_weight_bits(weight_bits)


def product_layout(n: int, lanes: int, tiling, weight_bits: int = 8) -> data.StructLayout:
    """Products of one item, bank by bank: per lane the signed ``8 + weight_bits`` product
    and its kernel id, the bank's entry ``addr`` and ``write`` (one bit per bank: the
    output exists)."""
    return data.StructLayout({
        "product": data.ArrayLayout(data.ArrayLayout(signed(product_bits(weight_bits)), lanes),
                                    tiling.banks),
        "kernel": data.ArrayLayout(data.ArrayLayout(unsigned(kernel_id_bits(n)), lanes),
                                   tiling.banks),
        "addr": data.ArrayLayout(unsigned(bits(tiling.depth)), tiling.banks),
        "write": unsigned(tiling.banks), "last": unsigned(1)})


class PackedMultiply(wiring.Component):
    """Multiply an activation by the packed weights of ``lanes`` groups and a tile of offsets.

    Complementary packing puts the non-overlapping kernels of a group into
    one packed kernel, so a single product per group and fan-in index does
    the work of ``n`` kernels; the kernel id travels with the product so the
    accumulators can add it to the right kernel's sum.

    Both streams are ``always_ready``: the pipeline behind never stalls
    (accumulator writes always succeed), so items flow one per cycle with a
    fixed latency of four cycles (item registered, weight read, rotation to
    banks, multiply). The first register keeps the scatter's index arithmetic
    (the word address is a sum of products of the item's coordinates) off the
    weight memory's address path: on a part without an address register in
    its block RAM (ECP5) that chain was the engine's critical path.

    Parameters
    ----------
    layer : Conv2d or Linear
        NetSpec layer whose packed weights fill the weight memory; its
        ``weight_bits`` sets the weight fields and the product width.
    lanes : int
        Groups multiplied per cycle; ``ceil(groups / lanes)`` passes cover every group.
    tiling : Tiling
        Offset tile and bank grid (:mod:`.tiling`).
    """

    def __init__(self, layer, lanes: int, tiling):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        self._bits = check_weight_bits(layer.weight_bits)
        self._layer, self._lanes, self._tiling = layer, lanes, tiling
        block = id_block(layer)
        self._words = weight_words(layer, lanes, tiling, ids=block == 1)
        self._ids = id_words(layer, lanes, tiling, block) if block > 1 else None
        super().__init__({
            "i": In(stream.Signature(item_layout(tiling, len(self._words),
                                                 len(self._ids) if self._ids else 0),
                                     always_ready=True)),
            "o": Out(stream.Signature(product_layout(layer.n, lanes, tiling, self._bits),
                                      always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        t, lanes = self._tiling, self._lanes
        layout = word_layout(self._layer.n, lanes, t.offsets, self._bits)
        # Stage 0: the item registered, its word address included.
        v0 = Signal()
        s0 = Signal(self.i.payload.shape())
        m.d.sync += [v0.eq(self.i.valid), s0.eq(self.i.payload)]
        if self._ids is None:
            m.submodules.weights = rom = Memory(shape=unsigned(layout.size),
                                                depth=len(self._words), init=self._words)
            read = rom.read_port()
            m.d.comb += read.addr.eq(s0.word)
            word = read.data
        else:
            word = self._split_memories(m, layout, s0)

        # Stage 1: the word is read; the item's routing fields wait beside it.
        v1 = Signal()
        s1 = Signal(self.i.payload.shape())
        m.d.sync += [v1.eq(v0), s1.eq(s0)]

        # Stage 2: each bank's weights (rotation: row, then column), entry and write enable.
        group_bits = lanes * lane_layout(self._layer.n, self._bits).size
        row_bits = t.cols * group_bits
        tile_rows = [word[i * row_bits:(i + 1) * row_bits] for i in range(t.rows)]
        v2, value2, last2 = Signal(), Signal(signed(8)), Signal()
        weights2 = Signal(data.ArrayLayout(data.ArrayLayout(lane_layout(self._layer.n, self._bits),
                                                            lanes),
                                           t.banks))
        weights1 = []  # per bank, its weights before their register (stage 1)
        addr2 = Signal.like(self.o.payload.addr)
        write2 = Signal(t.banks)
        m.d.sync += [v2.eq(v1), value2.eq(s1.value), last2.eq(s1.last)]
        for by in range(t.rows):
            row = Array(tile_rows)[s1.rows[by].src]
            columns = [row[j * group_bits:(j + 1) * group_bits] for j in range(t.cols)]
            for bx in range(t.cols):
                b = by * t.cols + bx
                entry = (s1.q * t.bank_h + s1.rows[by].addr) * t.bank_w + s1.cols[bx].addr
                ok = s1.rows[by].ok & s1.cols[bx].ok
                # A missing output gets entry 0, so no bank is ever addressed out of range.
                # Column-rotated weights are stored in bank order already (Tiling.col_patterns).
                column = columns[bx] if t.col_patterns else Array(columns)[s1.cols[bx].src]
                weights1.append(weights2.shape().elem_shape(column))
                m.d.sync += [weights2[b].eq(column),
                             addr2[b].eq(Mux(ok, entry, 0)), write2[b].eq(ok)]

        # Stage 3: registered products.
        m.d.sync += [self.o.valid.eq(v2), self.o.payload.addr.eq(addr2),
                     self.o.payload.write.eq(write2), self.o.payload.last.eq(last2)]
        for b in range(t.banks):
            for lane in range(lanes):
                kernel = self.o.payload.kernel[b][lane].eq(weights2[b][lane].kernel)
                if not is_ecp5(platform):
                    m.d.sync += [self.o.payload.product[b][lane].eq(
                                     value2 * weights2[b][lane].weight), kernel]
                    continue
                # On an ECP5 the operand and product registers are a MULT18X18D's: the
                # multiplier takes stage 1's value and bank weight and registers them itself
                # (value2 and the weights of weights2 are then left unused).
                m.submodules[f"multiplier_{b}_{lane}"] = multiplier = RegisteredMultiplier(
                    signed(8), signed(self._bits))
                m.d.comb += [multiplier.a.eq(s1.value), multiplier.b.eq(weights1[b][lane].weight),
                             multiplier.en.eq(1), self.o.payload.product[b][lane].eq(multiplier.p)]
                m.d.sync += kernel
        return m

    def _split_memories(self, m, layout, item):
        """A block pattern's two memories, read together: the weights at ``item.word``, one
        kernel id per block and lane at ``item.ids``; returns the word of ``layout`` they
        make (wiring only), so the rotation and the products are those of one memory."""
        entries = self._tiling.offsets * self._lanes
        kb = kernel_id_bits(self._layer.n)
        m.submodules.weights = weights = Memory(shape=unsigned(entries * self._bits),
                                                depth=len(self._words), init=self._words)
        m.submodules.kernel_ids = ids = Memory(shape=unsigned(entries * kb),
                                               depth=len(self._ids), init=self._ids)
        weight_read, id_read = weights.read_port(), ids.read_port()
        m.d.comb += [weight_read.addr.eq(item.word), id_read.addr.eq(item.ids)]
        word = Signal(layout)
        lanes = self._lanes
        for index in range(entries):
            lane = word[index // lanes][index % lanes]
            m.d.comb += [lane.weight.eq(weight_read.data[index * self._bits:
                                                          (index + 1) * self._bits]),
                         lane.kernel.eq(id_read.data[index * kb:(index + 1) * kb])]
        return word.as_value()
