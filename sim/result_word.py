"""Decoding the network's output beat: ``classes`` signed 32-bit logits, then the class.

Shared by the cocotb bench (:mod:`.bench_network`) and the Amaranth-simulator
measurement (:mod:`.pysim`), so both read the AXI-Stream result word the same way.
"""

__all__ = ["unpack_result"]


def unpack_result(word: int, classes: int):
    """``(logits, class)`` of one output beat ``word`` (an unsigned integer)."""
    logits = []
    for k in range(classes):
        v = (word >> (32 * k)) & 0xFFFFFFFF
        logits.append(v - (1 << 32) if v >> 31 else v)
    cls = (word >> (32 * classes)) & ((1 << max(1, (classes - 1).bit_length())) - 1)
    return logits, cls
