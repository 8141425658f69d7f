"""Stream payloads shared by every engine of the accelerator.

Engines talk through ``amaranth.lib.stream`` interfaces carrying these
layouts. Between layers, activations travel *sparse*: one beat per non-zero
value, with its flat index (docs/netspec.md, "Tensors and indices"), so the
work of the next engine follows the activation density. ``last`` closes the
activations of one input; an input with no non-zero activation at all is
sent as a single beat of value 0 with ``last`` set (a zero contributes
nothing, so it is exact and keeps every input visible downstream).
"""

from amaranth import unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

__all__ = ["activation_layout", "index_bits"]


def index_bits(size: int) -> int:
    """Bits of a flat index into a tensor of ``size`` elements (at least 1)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"tensor size must be a positive integer, got {size!r}")
    return max(1, ceil_log2(size))


def activation_layout(size: int, value_shape=None) -> data.StructLayout:
    """Sparse activation beat: ``value`` (int8 unless given), flat ``index``, ``last``."""
    from amaranth import signed
    return data.StructLayout({
        "value": signed(8) if value_shape is None else value_shape,
        "index": unsigned(index_bits(size)),
        "last": unsigned(1),
    })
