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
"""

import numpy as np
from amaranth import signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ...sw.netspec.layers import EMPTY_SLOT, MAX_WEIGHT_BITS, MIN_WEIGHT_BITS

__all__ = ["kernel_id_bits", "check_weight_bits", "lane_layout", "word_layout", "weight_words"]


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


def weight_words(layer, lanes: int, tiling) -> list:
    """Memory contents as integers of :func:`word_layout`.

    Address ``((c * tiles_y + ty) * tiles_x + tx) * passes + q`` for a conv
    layer (``tiling`` is its :class:`~.tiling.Tiling`); ``f * passes + q``
    for a linear layer (``tiling.kernel == 1``). A tiling with column
    patterns (``in_width``) stores each word once per pattern, at address
    ``word * copies + pattern``, its offsets' columns already in bank-column
    order: offset ``(i, b)`` of copy ``p`` is tile offset ``(i,
    col_patterns[p][b])``. Building the words with numpy keeps generation
    fast for layers with thousands of fan-in positions.
    """
    groups, fan_in = layer.weights.shape
    passes, k = tiling.passes, tiling.kernel
    bits = check_weight_bits(layer.weight_bits)
    lane_bits = bits + kernel_id_bits(layer.n)
    ids = layer.kernel_ids.astype(np.int64)
    fields = np.zeros((passes * lanes, fan_in), np.int64)
    fields[:groups] = ((layer.weights.astype(np.int64) & ((1 << bits) - 1))
                       | (np.where(ids == EMPTY_SLOT, 0, ids) << bits))
    channels = fan_in // (k * k)
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
