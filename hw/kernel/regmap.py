"""The kernel's host protocol: register map and buffer layout, shared by hardware and driver.

This module is the single source of every number the host and the kernel
must agree on. :class:`cosparse.hw.kernel.Kernel` decodes these offsets and
computes these strides; the driver (:mod:`cosparse.sw.driver.protocol`) writes
the same offsets and packs buffers with the same strides, whichever backend
carries the bytes. It imports nothing, so the driver can use it without
Amaranth.

Register map (``s_axi_control``, 32-bit registers, byte addresses)::

    0x00 CTRL      bit 0 ap_start (write 1 to start; reads 1 until the run ends)
                   bit 1 ap_done  (set when a run ends, cleared when CTRL is read)
                   bit 2 ap_idle  (no run in progress)
                   bit 3 ap_ready (set with ap_done, cleared when CTRL is read)
    0x04 GIE       bit 0 global interrupt enable
    0x08 IER       bit 0 done interrupt enable, bit 1 ready interrupt enable
    0x0C ISR       bit 0 done, bit 1 ready; a 1 written toggles the bit
    0x10 FEATURES  features buffer address, low word   (64-byte aligned)
    0x14           features buffer address, high word
    0x18 RESULTS   results buffer address, low word    (record-size aligned)
    0x1C           results buffer address, high word
    0x20 COUNT     inputs in the run
    0x24 CYCLES    clock cycles from ap_start to ap_done of the last run, low word (read only)
    0x28           high word
    0x2C STATUS    bit 0 error (read only): a memory access answered SLVERR/DECERR, or
                   an input frame disagreed with its size; cleared by the next start
                   (a framing error only by reset)

0x00-0x0C are Vitis's ``ap_ctrl_hs`` block; the arguments follow from 0x10 as
a Vitis RTL kernel's ``kernel.xml`` declares them (:data:`ARGS`).

Buffers (``m_axi_gmem``, 64-byte beats): the features buffer holds ``count``
inputs, each its int8 features in NetSpec flat ``(c, y, x)`` order padded with
zeros to :func:`input_stride` bytes; the results buffer receives one record
of :func:`record_stride` bytes per input, the result bits of
:mod:`cosparse.hw.axis_top` (int32 logits then the class index, little
endian) zero-padded to the record's end, and then one more record, the
*trailer* (:data:`TRAILER_FIELDS`), so :func:`results_buffer_bytes` in all.

The trailer carries what a host would otherwise read from registers (the
cycle count and the status) plus the fingerprint of the NetSpec the kernel
was generated from, because XRT's Python binding reads no registers: with
it, every backend learns everything about a run from the results buffer.
Trailer (little endian, at ``results + count * record_stride``)::

    0x00 magic        u32  TRAILER_MAGIC ("CSPT")
    0x04 status       u32  bit 0 error, as STATUS when the last result was stored
    0x08 cycles       u64  cycles from ap_start to the last result's write response
    0x10 fingerprint  u64  the NetSpec's fingerprint (cosparse.hw.kernel.fingerprint)
    0x18 count        u32  results written before the trailer (COUNT)
    0x1C version      u32  TRAILER_VERSION
"""

from __future__ import annotations

__all__ = ["CTRL", "GIE", "IER", "ISR", "FEATURES", "RESULTS", "COUNT", "CYCLES", "STATUS",
           "AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "INTERRUPT_DONE", "INTERRUPT_READY",
           "STATUS_ERROR", "ARGS", "CONTROL_ADDRESS_BITS", "CONTROL_DATA_BITS",
           "MEMORY_ADDRESS_BITS", "MEMORY_DATA_BITS", "BEAT_BYTES", "BOUNDARY_BYTES",
           "TRAILER_MAGIC", "TRAILER_VERSION", "TRAILER_FIELDS", "TRAILER_BYTES",
           "input_stride", "result_bytes", "record_stride", "results_buffer_bytes"]

CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
FEATURES, RESULTS, COUNT = 0x10, 0x18, 0x20
CYCLES, STATUS = 0x24, 0x2C

AP_START, AP_DONE, AP_IDLE, AP_READY = 1 << 0, 1 << 1, 1 << 2, 1 << 3
INTERRUPT_DONE, INTERRUPT_READY = 1 << 0, 1 << 1
STATUS_ERROR = 1 << 0

#: Kernel arguments as ``kernel.xml`` declares them: (name, offset, bytes, kind).
ARGS = (("features", FEATURES, 8, "global"),
        ("results", RESULTS, 8, "global"),
        ("count", COUNT, 4, "scalar"))

CONTROL_ADDRESS_BITS, CONTROL_DATA_BITS = 12, 32
MEMORY_ADDRESS_BITS, MEMORY_DATA_BITS = 64, 512
#: Bytes per memory beat.
BEAT_BYTES = MEMORY_DATA_BITS // 8
#: AXI4 bursts must not cross this address boundary.
BOUNDARY_BYTES = 4096

#: First word of every trailer: b"CSPT" read as a little-endian u32.
TRAILER_MAGIC = 0x54505343
#: Layout version of the trailer; a driver refuses others.
TRAILER_VERSION = 1
#: Trailer fields in address order: (name, byte offset, bytes).
TRAILER_FIELDS = (("magic", 0x00, 4), ("status", 0x04, 4), ("cycles", 0x08, 8),
                  ("fingerprint", 0x10, 8), ("count", 0x18, 4), ("version", 0x1C, 4))
#: Bytes of the trailer's fields (the record holding it is zero-padded to a record stride).
TRAILER_BYTES = 0x20


def input_stride(input_size: int) -> int:
    """Bytes of one input in the features buffer: its features padded to whole beats."""
    return -(-input_size // BEAT_BYTES) * BEAT_BYTES


def result_bytes(classes: int) -> int:
    """Bytes of one result: ``classes`` int32 logits, then the class index in whole bytes."""
    index_bits = max(1, (classes - 1).bit_length())
    return -(-(32 * classes + index_bits) // 8)


def record_stride(classes: int) -> int:
    """Bytes of one result record: whole beats, rounded up to a power of two.

    A power of two divides 4 KiB, so a record written as one burst at a
    record-aligned address never crosses an AXI 4 KiB boundary.
    """
    beats = -(-result_bytes(classes) // BEAT_BYTES)
    return BEAT_BYTES * (1 << (beats - 1).bit_length())


def results_buffer_bytes(classes: int, count: int) -> int:
    """Bytes of a results buffer for ``count`` inputs: their records, then the trailer record."""
    return (count + 1) * record_stride(classes)
