"""The host side of the kernel protocol: buffer packing, result and trailer decoding, registers.

Every backend moves bytes through these functions and nothing else, so the
simulated kernel and a real card see the same buffer images, and every
backend learns a run's cycle count, status and NetSpec fingerprint the
same way: from the trailer the kernel writes after the results
(:func:`decode_trailer`), not from registers, which XRT's Python binding
cannot read. The numbers come from :mod:`cosparse.hw.kernel.regmap`, the
module the hardware is built from; this module adds the numpy side:
checking and packing int8 features, decoding result records and the
trailer, and checking buffer addresses for a host that writes the
registers itself (the simulation bench).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...hw.kernel import regmap
from ...hw.kernel.fingerprint import netspec_fingerprint
from ...hw.kernel.regmap import (AP_DONE, AP_IDLE, AP_START, COUNT, CTRL, FEATURES, RESULTS,
                                 STATUS_ERROR)
from .. import golden
from ..netspec import NetSpec

__all__ = ["regmap", "Layout", "Trailer", "TrailerError", "NetSpecMismatch", "pack_features",
           "unpack_results", "decode_trailer", "check_fingerprint", "start_writes", "is_done",
           "CTRL", "AP_DONE", "AP_IDLE", "AP_START"]

_MAX_COUNT = (1 << 32) - 1


class TrailerError(RuntimeError):
    """A results buffer whose trailer is missing or inconsistent: the run did not complete."""


class NetSpecMismatch(RuntimeError):
    """The kernel was generated from another NetSpec than the one the driver was given."""


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

    def records_bytes(self, count: int) -> int:
        """Bytes of ``count`` result records (where the trailer starts)."""
        return count * self.record_stride

    def results_bytes(self, count: int) -> int:
        """Bytes of the whole results buffer of a run: the records, then the trailer record."""
        return regmap.results_buffer_bytes(self.classes, count)


@dataclass(frozen=True)
class Trailer:
    """What the kernel reports about a run, read from the record after its results.

    ``cycles`` counts from ap_start to the last result's write response;
    ``error`` is the status error bit (a memory access failed or a frame
    was malformed); ``fingerprint`` identifies the NetSpec the kernel was
    generated from (:func:`cosparse.hw.kernel.fingerprint.netspec_fingerprint`).
    """

    cycles: int
    error: bool
    fingerprint: int
    count: int


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
    need = layout.records_bytes(count)
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


def decode_trailer(layout: Layout, buffer, count: int) -> Trailer:
    """The :class:`Trailer` after ``count`` records of a results buffer.

    Raises :class:`TrailerError` when the buffer is too short, the magic
    word or the layout version is wrong (the kernel never wrote it: the run
    did not complete, or the kernel predates the trailer) or the trailer
    counts another number of results than the run asked for.
    """
    raw = np.frombuffer(bytes(buffer), np.uint8)
    start = layout.records_bytes(count)
    if raw.size < start + regmap.TRAILER_BYTES:
        raise TrailerError(f"results buffer holds {raw.size} bytes; the trailer after {count} "
                           f"records ends at byte {start + regmap.TRAILER_BYTES}")
    fields = {name: int.from_bytes(raw[start + offset:start + offset + size].tobytes(), "little")
              for name, offset, size in regmap.TRAILER_FIELDS}
    if fields["magic"] != regmap.TRAILER_MAGIC:
        raise TrailerError(f"no trailer after the {count} results (word {fields['magic']:#010x}, "
                           f"expected {regmap.TRAILER_MAGIC:#010x}): the run did not complete, "
                           f"or the kernel was generated before the trailer protocol; rebuild it")
    if fields["version"] != regmap.TRAILER_VERSION:
        raise TrailerError(f"trailer version {fields['version']}, this driver reads version "
                           f"{regmap.TRAILER_VERSION}: rebuild the kernel or update cosparse")
    if fields["count"] != count:
        raise TrailerError(f"the trailer counts {fields['count']} results for a run of {count}")
    return Trailer(cycles=fields["cycles"], error=bool(fields["status"] & STATUS_ERROR),
                   fingerprint=fields["fingerprint"], count=fields["count"])


def check_fingerprint(spec: NetSpec, trailer: Trailer):
    """Raise :class:`NetSpecMismatch` unless the kernel was generated from ``spec``."""
    expected = netspec_fingerprint(spec)
    if trailer.fingerprint != expected:
        raise NetSpecMismatch(
            f"the kernel was generated from another NetSpec (fingerprint "
            f"{trailer.fingerprint:016x}) than the driver's {spec.name!r} ({expected:016x}); its "
            f"results would be wrong: pass the --netspec the kernel (xclbin) was built from, "
            f"or rebuild the kernel for this one")


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
