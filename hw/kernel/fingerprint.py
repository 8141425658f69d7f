"""The NetSpec fingerprint a kernel writes into every trailer, and a driver checks.

A kernel computes a fixed function of one NetSpec; an xclbin (or a
simulation build) says nothing about which. The generator therefore bakes a
64-bit digest of the NetSpec's content into the kernel, which writes it in
each run's trailer (:mod:`.regmap`), and the driver compares it with the
digest of the NetSpec it was given, so the wrong ``--netspec`` is an error
instead of wrong logits.

The digest walks the NetSpec's dataclass fields in declaration order and
hashes each value by kind, not by ``repr`` (numpy scalars print differently
across versions), so a NetSpec saved and loaded again keeps its fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
from numbers import Integral, Real

import numpy as np

__all__ = ["FINGERPRINT_BITS", "netspec_fingerprint"]

#: Width of the fingerprint in the trailer.
FINGERPRINT_BITS = 64


def _feed(h, value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(b"D" + type(value).__name__.encode())
        for f in dataclasses.fields(value):
            h.update(b"F" + f.name.encode())
            _feed(h, getattr(value, f.name))
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        h.update(f"M{len(value)}".encode())
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    elif value is None or isinstance(value, (bool, np.bool_)):
        h.update(f"B{value if value is None else bool(value)}".encode())
    elif isinstance(value, Integral):
        h.update(f"I{int(value)}".encode())
    elif isinstance(value, Real):
        h.update(f"R{float(value).hex()}".encode())
    elif isinstance(value, str):
        h.update(b"S" + value.encode() + b"\0")
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__} in a NetSpec")


def netspec_fingerprint(spec) -> int:
    """The 64-bit fingerprint of a NetSpec's content (name, layers, weights, quantisation)."""
    from ...sw.netspec import NetSpec
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    h = hashlib.sha256(b"cosparse-netspec-fingerprint-1")
    _feed(h, spec)
    return int.from_bytes(h.digest()[:FINGERPRINT_BITS // 8], "little")
