"""The pieces every cache of the project is built from: a root, a lock, atomic writes.

cosparse keeps several caches (simulator builds, synthesis results,
RTLIL netlists, logic depths, data-set features). Each must stay correct
when two processes fill it at once and when a process dies half-way
(docs/simulation.md, "Build cache"). They all follow one recipe:

1. take :func:`locked` on the entry (an exclusive ``fcntl`` lock on a
   ``<entry>.lock`` file beside it; the kernel drops it when its holder
   exits, however it exits), so that a second process waits and then
   reuses the first one's result instead of racing it;
2. check the entry's marker before reuse (:func:`read_json` parses it;
   the caller checks its fields and files) and redo the work when it does
   not pass: a failed or interrupted run never leaves a marker;
3. write the marker, last, with :func:`write_atomic` (temporary file in
   the same folder, ``fsync``, ``os.replace``): a reader sees no marker or
   a whole one, never a truncated one.

Entries are keyed by content: :func:`feed` hashes a NetSpec, a HwConfig
or any plain value by kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np

__all__ = ["cache_root", "locked", "write_atomic", "atomic_path", "read_json", "feed"]


def cache_root() -> Path:
    """``$COSPARSE_CACHE`` or ``~/.cache/cosparse``."""
    env = os.environ.get("COSPARSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cosparse"


@contextlib.contextmanager
def locked(entry, log=None):
    """Hold the exclusive lock of one cache ``entry`` (a file or folder, present or not).

    The lock file is ``<entry>.lock`` beside the entry, not inside it, so a
    broken entry can be removed while the lock is held. ``log`` (a callable
    taking one line) hears when another process holds the lock. Locks are
    per open file, so threads of one process exclude each other too.
    """
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"waiting for another process using {entry}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """A temporary path beside ``path`` to write; moved onto ``path`` when the block succeeds.

    For writers that want a file name (``np.savez``, ``torch.save``);
    ``suffix`` keeps an extension such writers insist on. On an exception
    the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                    dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path, data: str | bytes):
    """Write ``data`` (text or bytes) to ``path`` atomically: no reader sees half of it."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def read_json(path) -> tuple[object, str | None]:
    """``(value, None)`` for a marker that parses, ``(None, why not)`` otherwise (missing,
    unreadable, not UTF-8, not JSON); the caller checks the fields it needs."""
    try:
        return json.loads(Path(path).read_text()), None
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"unreadable ({error})"


def feed(h, value):
    """Feed ``value`` (dataclasses such as a NetSpec or HwConfig, arrays, lists, dicts, numbers,
    strings, None) into the hashlib object ``h`` by kind, not by ``repr``, so that equal
    content hashes equal across numpy versions and a save/load round trip. The kernel's NetSpec
    fingerprint is built on it: its output must never change. TypeError for another kind."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(b"D" + type(value).__name__.encode())
        for f in dataclasses.fields(value):
            h.update(b"F" + f.name.encode())
            feed(h, getattr(value, f.name))
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for item in value:
            feed(h, item)
    elif isinstance(value, dict):
        h.update(f"M{len(value)}".encode())
        for key in sorted(value, key=str):
            feed(h, str(key))
            feed(h, value[key])
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
