"""Packed weight memory: the word layout and its contents.

One word holds everything one work item multiplies: for input channel
``c``, offset tile ``(ty, tx)`` and pass ``q``, the packed weights of the
tile's ``offsets`` kernel offsets for ``lanes`` groups (lane ``l`` of pass
``q`` is group ``g = q * lanes + l``). One read therefore fetches every
product partner of an activation in that tile and pass. A linear layer is
the ``kernel = 1`` case: one word per fan-in index and pass.

An empty slot (and a lane past the last group) is stored as weight 0 with
kernel id 0: adding a zero product to any accumulator is exact, so no
enable bit and no special case are needed.

A lane's weight field is as wide as the layer's ``weight_bits`` (NetSpec
version 2: 2 to 16 bits, 8 by default), so a word costs ``offsets x lanes x
(weight_bits + kernel id bits)`` bits: a 16-bit layer's weight memory is
about twice an 8-bit one's, a 4-bit layer's a little over half.

A layer with a ``block:K`` pattern (``K`` a power of two, :func:`id_block`)
keeps its kernel ids apart: the weight memory holds the weights alone and
a second memory, ``K`` times shallower, one id per block and lane
(:func:`id_words`), read with the weights and shared by the ``K`` channels
(inputs) of the block, so a word costs ``offsets x lanes x weight_bits``
plus ``offsets x lanes x kernel id bits`` per ``K`` words.
"""

import numpy as np
from amaranth import signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ...sw.netspec.layers import EMPTY_SLOT, MAX_WEIGHT_BITS, MIN_WEIGHT_BITS

__all__ = ["kernel_id_bits", "check_weight_bits", "lane_layout", "word_layout", "weight_words",
           "id_block", "block_ids", "id_words"]


def kernel_id_bits(n: int) -> int:
    """Bits of a kernel id within a group of ``n`` kernels (at least 1)."""
    return max(1, ceil_log2(n))


def check_weight_bits(weight_bits) -> int:
    """``weight_bits`` as an int; ValueError unless an integer in [2, 16] (TypeError: not one)."""
    if not isinstance(weight_bits, (int, np.integer)) or isinstance(weight_bits, bool):
        raise TypeError(f"weight_bits must be an integer, got {weight_bits!r}")
    if not MIN_WEIGHT_BITS <= weight_bits <= MAX_WEIGHT_BITS:
        raise ValueError(f"weight_bits must be in [{MIN_WEIGHT_BITS}, {MAX_WEIGHT_BITS}], "
                         f"got {weight_bits!r}")
    return int(weight_bits)


def lane_layout(n: int, weight_bits: int = 8) -> data.StructLayout:
    """One lane of a packed word: the signed ``weight_bits`` weight and the kernel id it
    belongs to."""
    return data.StructLayout({"weight": signed(check_weight_bits(weight_bits)),
                              "kernel": unsigned(kernel_id_bits(n))})


def word_layout(n: int, lanes: int, offsets: int = 1, weight_bits: int = 8) -> data.ArrayLayout:
    """A packed word: ``offsets`` tile offsets (row-major in the tile) of ``lanes`` lanes,
    offset 0 lane 0 in the low bits."""
    return data.ArrayLayout(data.ArrayLayout(lane_layout(n, weight_bits), lanes), offsets)


def id_block(layer) -> int:
    """Slots that share one stored kernel id in the scatter engines' weight memory.

    A layer whose NetSpec ``pattern`` is ``block:K`` with ``K`` a power of
    two above 1 stores one id per block (the engine finds a block's id word
    with a shift of the channel or fan-in index); any other layer (and any
    other ``K``, which would need a divider) one per slot, so this is 1.
    """
    pattern = layer.structure
    k = pattern.k if pattern.kind == "block" else 1
    return k if k > 1 and k & (k - 1) == 0 else 1


def _words(fields, lanes: int, tiling, channels: int, lane_bits: int) -> list:
    """Pack ``fields [passes*lanes, channels*K*K]`` (one integer per lane and slot) into words."""
    passes = tiling.passes
    # (q, l, c, ty, i, tx, j) -> (c, ty, tx, q | i, j, l): one row per word, entries in
    # word order (offset i*cols + j outer, lane inner).
    fields = fields.reshape(passes, lanes, channels, tiling.tiles_y, tiling.rows,
                            tiling.tiles_x, tiling.cols)
    ordered = fields.transpose(2, 3, 5, 0, 4, 6, 1)  # (c, ty, tx, q, i, j, l)
    if tiling.col_patterns:
        # (..., i, pattern, b, l): bank column b of copy p holds tile column col_patterns[p][b].
        ordered = np.stack([ordered[..., list(p), :] for p in tiling.col_patterns], axis=-3)
        ordered = np.moveaxis(ordered, -4, -3)  # (c, ty, tx, q, p, i, b, l)
    rows = ordered.reshape(-1, tiling.offsets * lanes)
    words = []
    for row in rows.tolist():
        word = 0
        for index, value in enumerate(row):
            word |= value << (index * lane_bits)
        words.append(word)
    return words


def weight_words(layer, lanes: int, tiling, ids: bool = True) -> list:
    """Memory contents as integers of :func:`word_layout` (``ids`` False: weights only).

    Address ``((c * tiles_y + ty) * tiles_x + tx) * passes + q`` for a conv
    layer (``tiling`` is its :class:`~.tiling.Tiling`); ``f * passes + q``
    for a linear layer (``tiling.kernel == 1``). A tiling with column
    patterns (``in_width``) stores each word once per pattern, at address
    ``word * copies + pattern``, its offsets' columns already in bank-column
    order: offset ``(i, b)`` of copy ``p`` is tile offset ``(i,
    col_patterns[p][b])``. Building the words with numpy keeps generation
    fast for layers with thousands of fan-in positions. Without ``ids``
    (a block pattern, :func:`id_words` holds them) a lane is its weight alone.
    """
    groups, fan_in = layer.weights.shape
    bits = check_weight_bits(layer.weight_bits)
    lane_bits = bits + (kernel_id_bits(layer.n) if ids else 0)
    fields = np.zeros((tiling.passes * lanes, fan_in), np.int64)
    fields[:groups] = layer.weights.astype(np.int64) & ((1 << bits) - 1)
    if ids:
        kernel_ids = layer.kernel_ids.astype(np.int64)
        fields[:groups] |= np.where(kernel_ids == EMPTY_SLOT, 0, kernel_ids) << bits
    return _words(fields, lanes, tiling, fan_in // (tiling.kernel ** 2), lane_bits)


def block_ids(layer, block: int) -> np.ndarray:
    """One kernel id per block ``[groups, ceil(C / block) * K*K]`` (an all-empty block: 0).

    Block ``b`` of offset ``o`` covers channels ``[b*block, (b+1)*block)`` at
    offset ``o`` (for a linear layer, ``K = 1``: inputs ``[b*block, ...)``),
    unit ``b * K*K + o`` of :meth:`~cosparse.sw.netspec.pattern.Pattern.units`.
    """
    groups, fan_in = layer.kernel_ids.shape
    offsets = layer.pattern_kernel ** 2
    channels = fan_in // offsets
    blocks = -(-channels // block)
    ids = np.full((groups, blocks * block, offsets), -1, np.int64)
    kernel_ids = layer.kernel_ids.astype(np.int64).reshape(groups, channels, offsets)
    ids[:, :channels] = np.where(kernel_ids == EMPTY_SLOT, -1, kernel_ids)
    # Every used slot of a block holds the same id (the NetSpec checks the pattern).
    shared = ids.reshape(groups, blocks, block, offsets).max(axis=2)
    return np.maximum(shared, 0).reshape(groups, blocks * offsets)


def id_words(layer, lanes: int, tiling, block: int) -> list:
    """Kernel-id memory of a block pattern: :func:`weight_words`' order with channel (fan-in
    index) ``c`` replaced by its block ``c // block``, a lane ``kernel_id_bits(n)`` wide."""
    ids = block_ids(layer, block)
    fields = np.zeros((tiling.passes * lanes, ids.shape[1]), np.int64)
    fields[:ids.shape[0]] = ids
    return _words(fields, lanes, tiling, ids.shape[1] // (tiling.kernel ** 2),
                  kernel_id_bits(layer.n))
