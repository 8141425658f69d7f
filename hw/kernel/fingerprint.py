"""The NetSpec fingerprint a kernel writes into every trailer, and a driver checks.

A kernel computes a fixed function of one NetSpec; an xclbin (or a
simulation build) says nothing about which. The generator therefore bakes a
64-bit digest of the NetSpec's content into the kernel, which writes it in
each run's trailer (:mod:`.regmap`), and the driver compares it with the
digest of the NetSpec it was given, so the wrong ``--netspec`` is an error
instead of wrong logits.

The digest is :func:`cosparse.sw.cache.feed` (the same content hash keys the
simulator builds): it walks the NetSpec's dataclass fields in declaration
order and hashes each value by kind, not by ``repr`` (numpy scalars print
differently across versions), so a NetSpec saved and loaded again keeps its
fingerprint.
"""

from __future__ import annotations

import hashlib

from ...sw.cache import feed

__all__ = ["FINGERPRINT_BITS", "netspec_fingerprint"]

#: Width of the fingerprint in the trailer.
FINGERPRINT_BITS = 64


def netspec_fingerprint(spec) -> int:
    """The 64-bit fingerprint of a NetSpec's content (name, layers, weights, quantisation)."""
    from ...sw.netspec import NetSpec
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    h = hashlib.sha256(b"cosparse-netspec-fingerprint-1")
    feed(h, spec)
    return int.from_bytes(h.digest()[:FINGERPRINT_BITS // 8], "little")
