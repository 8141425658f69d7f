"""Stream payloads shared by every engine of the accelerator.

Engines talk through ``amaranth.lib.stream`` interfaces carrying these
layouts, and ``last`` closes the data of one input in every one of them.

- **Sparse** activations travel between layers as one beat per non-zero
  value with its coordinates: ``(c, y, x)`` for a ``(C, H, W)`` tensor, or
  ``index`` for an ``(F,)`` tensor, so the next engine's work follows the
  activation density and no engine has to divide a flat index. The flat
  index of docs/netspec.md is ``c*H*W + y*W + x``. An input with no
  non-zero activation at all is sent as a single beat of value 0 with
  ``last`` set: a zero contributes nothing, so this is exact and keeps every
  input visible downstream.
- **Dense** activations (an engine's requantised outputs) travel one value
  per beat in flat order for a 1-D tensor and in *position-major* order for
  a 3-D one: for each ``(y, x)`` in raster order, all ``C`` channels in
  ascending order, which is the order a local k-WTA consumes.
- **Dense vector** activations carry a whole position per beat: a
  convolution engine drains all ``C`` channels of one (pooled) output
  position at once, so its output is one beat per position, raster order,
  ``values[c]`` being channel ``c``. A local k-WTA or a Sparsifier takes
  such a beat per cycle, which is what lets them keep up with an engine
  that drains ``C`` accumulators per cycle.

Values are int8, except between a requantisation with ``frac_bits = f > 0``
and the k-WTA that rounds them (through any max-pool): there they are int8
with ``f`` extra fraction bits, ``value_shape(f) = signed(8 + f)``, and the
dense layouts take that shape. Sparse streams (a k-WTA's output) are int8.
"""

from math import prod
from numbers import Integral

from amaranth import signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ..sw.netspec.layers import MAX_FRAC_BITS  # fraction bits a value may carry to its k-WTA

__all__ = ["MAX_FRAC_BITS", "check_frac_bits", "value_shape", "coordinate_bits", "sparse_layout",
           "dense_layout", "dense_vector_layout", "flat_index", "tensor_size"]


def check_frac_bits(frac_bits) -> int:
    """``frac_bits`` as an int; TypeError unless an integer, ValueError outside [0, 8]."""
    if not isinstance(frac_bits, Integral) or isinstance(frac_bits, bool):
        raise TypeError(f"frac_bits must be an integer, got {frac_bits!r}")
    if not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits must be in [0, {MAX_FRAC_BITS}], got {frac_bits!r}")
    return int(frac_bits)


def value_shape(frac_bits: int = 0):
    """Shape of an int8 value with ``frac_bits`` fraction bits: ``signed(8 + frac_bits)``."""
    return signed(8 + check_frac_bits(frac_bits))


def coordinate_bits(extent: int) -> int:
    """Bits of a coordinate ranging over ``extent`` values (at least 1)."""
    if not isinstance(extent, int) or isinstance(extent, bool) or extent < 1:
        raise ValueError(f"tensor extent must be a positive integer, got {extent!r}")
    return max(1, ceil_log2(extent))


def _check_shape(shape):
    if not isinstance(shape, tuple) or len(shape) not in (1, 3):
        raise TypeError(f"tensor shape must be a tuple (C, H, W) or (F,), got {shape!r}")
    for extent in shape:
        coordinate_bits(extent)


def sparse_layout(shape: tuple, value_shape=signed(8)) -> data.StructLayout:
    """One non-zero activation of a ``shape`` tensor: value, coordinates, ``last``."""
    _check_shape(shape)
    fields = {"value": value_shape}
    if len(shape) == 3:
        fields.update(c=unsigned(coordinate_bits(shape[0])), y=unsigned(coordinate_bits(shape[1])),
                      x=unsigned(coordinate_bits(shape[2])))
    else:
        fields["index"] = unsigned(coordinate_bits(shape[0]))
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


def dense_layout(value_shape=signed(8)) -> data.StructLayout:
    """One value of a dense stream (flat or position-major order) and ``last``."""
    return data.StructLayout({"value": value_shape, "last": unsigned(1)})


def dense_vector_layout(channels: int, value_shape=signed(8)) -> data.StructLayout:
    """All ``channels`` values of one position (``values[c]``, channel 0 in the low bits)
    and ``last`` (on the input's final position)."""
    coordinate_bits(channels)  # validates the count
    return data.StructLayout({"values": data.ArrayLayout(value_shape, channels),
                              "last": unsigned(1)})


def flat_index(shape: tuple, c: int, y: int, x: int) -> int:
    """docs/netspec.md flat index of ``(c, y, x)`` in a ``(C, H, W)`` tensor."""
    return (c * shape[1] + y) * shape[2] + x


def tensor_size(shape: tuple) -> int:
    """Number of elements of a tensor shape."""
    return prod(shape)
