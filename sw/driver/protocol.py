"""The host side of the kernel protocol: buffer packing, result decoding, register sequences.

Every backend moves bytes and registers through these functions and
nothing else, so the simulated kernel and a real card see the same buffer
images and the same register writes in the same order. The numbers come
from :mod:`cosparse.hw.kernel.regmap`, the module the hardware is built
from; this module adds the numpy side: checking and packing int8 features,
decoding result records, and checking buffer addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...hw.kernel import regmap
from ...hw.kernel.regmap import (AP_DONE, AP_IDLE, AP_START, COUNT, CTRL, CYCLES, FEATURES,
                                 RESULTS, STATUS, STATUS_ERROR)
from .. import golden
from ..netspec import NetSpec

__all__ = ["regmap", "Layout", "pack_features", "unpack_results", "start_writes",
           "COMPLETION_READS", "decode_completion", "is_done", "CTRL", "AP_DONE", "AP_IDLE",
           "AP_START"]

#: Registers a host reads once ``ap_done`` is seen, in this order (see :func:`decode_completion`).
COMPLETION_READS = (CYCLES, CYCLES + 4, STATUS)
_MAX_COUNT = (1 << 32) - 1


@dataclass(frozen=True)
class Layout:
    """Buffer geometry of one NetSpec: bytes per input and per result record."""

    input_shape: tuple
    classes: int

    @classmethod
    def of(cls, spec: NetSpec) -> "Layout":
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        return cls(tuple(spec.input.shape), len(spec.classes))

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def input_stride(self) -> int:
        return regmap.input_stride(self.input_size)

    @property
    def result_bytes(self) -> int:
        return regmap.result_bytes(self.classes)

    @property
    def record_stride(self) -> int:
        return regmap.record_stride(self.classes)

    def features_bytes(self, count: int) -> int:
        return count * self.input_stride

    def results_bytes(self, count: int) -> int:
        return count * self.record_stride


def pack_features(spec: NetSpec, x) -> np.ndarray:
    """The features buffer of a batch: uint8, each input padded with zeros to whole beats.

    ``x`` is one input ``(C, H, W)`` or a batch ``(B, C, H, W)`` of int8
    feature codes; a wrong shape, a non-integer dtype, NaN or a value
    outside the NetSpec's input range raises a ValueError naming it.
    """
    x = golden.validate_inputs(spec, x)
    if len(x) == 0:
        raise ValueError("no inputs to pack")
    if len(x) > _MAX_COUNT:
        raise ValueError(f"{len(x)} inputs exceed the 32-bit COUNT register")
    layout = Layout.of(spec)
    buffer = np.zeros((len(x), layout.input_stride), np.uint8)
    buffer[:, :layout.input_size] = x.reshape(len(x), -1).view(np.uint8)
    return buffer.reshape(-1)


def unpack_results(layout: Layout, buffer, count: int):
    """Logits (int32 ``[count, classes]``) and predictions (int64 ``[count]``) of a results buffer.

    Raises a ValueError when the buffer is shorter than ``count`` records or
    a record's class index is out of range (an unwritten or corrupt record).
    """
    raw = np.frombuffer(bytes(buffer), np.uint8)
    need = layout.results_bytes(count)
    if raw.size < need:
        raise ValueError(f"results buffer holds {raw.size} bytes; {count} records need {need}")
    records = raw[:need].reshape(count, layout.record_stride)
    logits = records[:, :4 * layout.classes].copy().view("<i4").astype(np.int32)
    index = records[:, 4 * layout.classes:layout.result_bytes].astype(np.int64)
    predictions = (index * (256 ** np.arange(index.shape[1], dtype=np.int64))).sum(axis=1)
    predictions &= (1 << max(1, (layout.classes - 1).bit_length())) - 1
    bad = np.flatnonzero(predictions >= layout.classes)
    if bad.size:
        raise ValueError(f"result record {int(bad[0])} holds class {int(predictions[bad[0]])} "
                         f"of {layout.classes}: not written by the kernel")
    return logits, predictions


def _check_address(name: str, address: int, alignment: int):
    if not isinstance(address, (int, np.integer)) or isinstance(address, bool):
        raise TypeError(f"{name} address must be an integer, got {type(address).__name__}")
    if not 0 <= address < 1 << regmap.MEMORY_ADDRESS_BITS:
        raise ValueError(f"{name} address {address:#x} is not a 64-bit address")
    if address % alignment:
        raise ValueError(f"{name} address {address:#x} is not {alignment}-byte aligned")


def start_writes(layout: Layout, features_address: int, results_address: int,
                 count: int) -> list:
    """The ``(offset, value)`` register writes that start a run, in order; the last sets ap_start.

    The features buffer must be beat (64-byte) aligned and the results
    buffer record aligned, so that no burst crosses a 4 KiB boundary.
    """
    _check_address("features", features_address, regmap.BEAT_BYTES)
    _check_address("results", results_address, layout.record_stride)
    if not isinstance(count, (int, np.integer)) or not 1 <= count <= _MAX_COUNT:
        raise ValueError(f"count must be an integer from 1 to {_MAX_COUNT}, got {count!r}")
    mask = (1 << 32) - 1
    return [(FEATURES, features_address & mask), (FEATURES + 4, features_address >> 32),
            (RESULTS, results_address & mask), (RESULTS + 4, results_address >> 32),
            (COUNT, int(count)), (CTRL, AP_START)]


def is_done(ctrl: int) -> bool:
    """Whether a CTRL value read says the run has ended (reading it cleared ap_done)."""
    return bool(ctrl & AP_DONE)


def decode_completion(values) -> tuple:
    """``(cycles, error)`` from the values of :data:`COMPLETION_READS`."""
    low, high, status = values
    return (int(high) << 32) | int(low), bool(status & STATUS_ERROR)
