"""Packed weight memory: the word layout and its contents.

For fan-in index ``f`` and pass ``q`` the memory holds one wide word of
``lanes`` lanes; lane ``l`` carries the packed weight and kernel id of group
``g = q * lanes + l``. One read therefore fetches every product partner of
an activation in that pass. An empty slot (and a lane past the last group)
is stored as weight 0 with kernel id 0: adding a zero product to any
accumulator is exact, so no enable bit and no special case are needed.
"""

from amaranth import signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ...sw.netspec import EMPTY_SLOT

__all__ = ["kernel_id_bits", "lane_layout", "word_layout", "weight_words"]


def kernel_id_bits(n: int) -> int:
    """Bits of a kernel id within a group of ``n`` kernels (at least 1)."""
    return max(1, ceil_log2(n))


def lane_layout(n: int) -> data.StructLayout:
    """One lane of a packed word: int8 weight and the kernel id it belongs to."""
    return data.StructLayout({"weight": signed(8), "kernel": unsigned(kernel_id_bits(n))})


def word_layout(n: int, lanes: int) -> data.ArrayLayout:
    """A packed word: ``lanes`` lanes side by side, lane 0 in the low bits."""
    return data.ArrayLayout(lane_layout(n), lanes)


def weight_words(layer, lanes: int) -> list:
    """Memory contents, address ``f * passes + q``, as integers of :func:`word_layout`.

    ``layer`` is a NetSpec conv2d or linear layer. Building the words with
    numpy keeps generation fast for layers with thousands of fan-in positions.
    """
    import numpy as np

    groups, fan_in = layer.weights.shape
    passes = -(-groups // lanes)
    kbits = kernel_id_bits(layer.n)
    lane_bits = 8 + kbits
    weights = np.zeros((passes * lanes, fan_in), np.int64)
    kernels = np.zeros((passes * lanes, fan_in), np.int64)
    weights[:groups] = layer.weights.astype(np.int64) & 0xFF
    ids = layer.kernel_ids.astype(np.int64)
    kernels[:groups] = np.where(ids == EMPTY_SLOT, 0, ids)
    fields = (weights | (kernels << 8)).reshape(passes, lanes, fan_in)
    words = []
    for f in range(fan_in):
        for q in range(passes):
            word = 0
            for lane, value in enumerate(fields[q, :, f].tolist()):
                word |= value << (lane * lane_bits)
            words.append(word)
    return words
