"""int8 features of a whole split, computed once and cached next to the data.

Feature extraction costs about 1 ms a clip, so a full GSC split takes tens of
seconds; training runs many times, so the result is cached in
``ROOT/.cosparse-cache/<split>-<hash>.npz``.  The hash covers everything the
features depend on: each example's name (clip path, or noise window and
gain), the content (a BLAKE2 digest of the bytes) of each source file, and
the feature parameters (:func:`cosparse.sw.features.input_quant_spec`, which
includes the feature normalisation; "none" keeps the keys it always had).
Change any of them and a new cache file is written; stale ones are left for
the user to delete.  The cache file also holds a digest of its own arrays:
one that is truncated, edited or otherwise does not match is recomputed,
never used.  The cache follows :mod:`cosparse.sw.cache`: a split is read or
computed under the cache file's lock (a second process waits, then reuses
the first one's file), and written atomically (a temporary file, then
``os.replace``); a folder where no cache can be written only costs the
recomputation, with a warning.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
import zipfile
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from .. import features
from ..cache import atomic_path, locked
from .gsc import Example, list_split

#: fork where there is one: spawn would re-import the caller's script, which
#: breaks scripts without an ``if __name__ == "__main__"`` guard.
_START = "fork" if "fork" in get_all_start_methods() else "spawn"
CACHE_DIR = ".cosparse-cache"
#: Below this many clips a worker pool costs more than it saves.
POOL_MIN = 256


def _one_blas_thread() -> None:
    """Pin BLAS to one thread: the mel matmul is tiny, and a multithreaded BLAS
    spinning on a busy 2-core machine made it 50x slower (35 ms a clip)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _features_of(example: Example, normalisation: str = "none") -> np.ndarray:
    from .gsc import load_example

    return features.audio_to_features(load_example(example), normalisation)


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(examples: list[Example], normalisation: str = "none") -> str:
    digest = hashlib.sha256(json.dumps(features.input_quant_spec(normalisation),
                                       sort_keys=True).encode())
    contents: dict[Path, str] = {}
    for example in examples:
        if example.path not in contents:
            contents[example.path] = _file_digest(example.path)
        digest.update(f"{example.name}|{example.label}|{contents[example.path]}\n".encode())
    return digest.hexdigest()[:16]


def _arrays_digest(X: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256(f"{X.dtype.str}{X.shape}{y.dtype.str}{y.shape}".encode())
    digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, y: np.ndarray) -> np.ndarray | None:
    """The cached features, or None when the file is missing, damaged or does not match."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as cached:
            X, cached_y, stored = cached["X"], cached["y"], str(cached["digest"])
        if (X.dtype == np.int8 and X.shape == (len(y),) + features.FEATURE_SHAPE
                and np.array_equal(cached_y, y) and stored == _arrays_digest(X, cached_y)):
            return X
        problem = "its contents do not match its digest or the split"
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        problem = f"unreadable ({error})"
    warnings.warn(f"{path}: features cache {problem}; recomputing it", stacklevel=3)
    return None


def _write_cache(path: Path, X: np.ndarray, y: np.ndarray):
    """Write the cache atomically; a folder that cannot hold it costs only a warning."""
    try:
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path, suffix=".npz") as temporary:
            np.savez(temporary, X=X, y=y, digest=np.array(_arrays_digest(X, y)))
    except OSError as error:
        warnings.warn(f"{path}: cannot write the features cache ({error}); the features "
                      f"will be recomputed next time", stacklevel=3)


@contextlib.contextmanager
def _cache_lock(path: Path):
    """The cache file's lock (:func:`cosparse.sw.cache.locked`): a second process computing
    the same split waits and reuses the first one's file. A folder where no lock file can be
    made (read-only data) is used unlocked: nothing will be written there either."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked(path))
        except OSError:
            pass
        yield


def compute_features(examples: list[Example], *, progress: bool = True,
                     jobs: int | None = None, normalisation: str = "none") -> np.ndarray:
    """int8 [n, 1, 32, 32] features of ``examples``, over ``jobs`` processes.

    ``jobs`` defaults to the CPU count, at most 2 (the machines this targets);
    small lists are done in this process. ``normalisation``: one of
    :data:`cosparse.sw.features.NORMALISATIONS`.
    """
    from tqdm import tqdm

    one = functools.partial(_features_of, normalisation=features.check_normalisation(normalisation))
    jobs = jobs or min(2, os.cpu_count() or 1)
    bar = dict(total=len(examples), desc="features", unit="clip", disable=not progress)
    out = np.zeros((len(examples),) + features.FEATURE_SHAPE, dtype=np.int8)
    if jobs == 1 or len(examples) < POOL_MIN:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for i, row in enumerate(tqdm(map(one, examples), **bar)):
                out[i] = row
        return out
    with get_context(_START).Pool(jobs, _one_blas_thread) as pool:
        rows = pool.imap(one, examples, chunksize=64)
        for i, row in enumerate(tqdm(rows, **bar)):
            out[i] = row
    return out


def load_features(root: str | os.PathLike, split: str, *, cache: bool = True,
                  progress: bool = True, jobs: int | None = None, normalisation: str = "none",
                  **split_options) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and names of one split of a GSC root.

    Parameters
    ----------
    root : path-like
        GSC root (real or synthesised).
    split : {"train", "validation", "testing"}
    cache : bool
        Read/write ``ROOT/.cosparse-cache/<split>-<hash>.npz``.
    progress : bool
        Show a tqdm bar while computing.
    jobs : int, optional
        Worker processes (default: up to 2).
    normalisation : str
        Feature normalisation, one of :data:`cosparse.sw.features.NORMALISATIONS`
        (the model's: a NetSpec's :func:`cosparse.sw.features.normalisation_of`).
    **split_options
        ``silence_fraction``, ``unknown_fraction``, ``seed`` of
        :func:`cosparse.sw.data.gsc.list_split`.

    Returns
    -------
    X : numpy.ndarray
        int8 [n, 1, 32, 32] in [0, 127].
    y : numpy.ndarray
        int64 [n], indices into ``CLASSES``.
    names : list of str
        Example names (see :attr:`Example.name`), for error analysis.
    """
    features.check_normalisation(normalisation)
    examples = list_split(root, split, **split_options)
    names = [e.name for e in examples]
    y = np.array([e.label for e in examples], dtype=np.int64)
    if not cache:
        return compute_features(examples, progress=progress, jobs=jobs,
                                normalisation=normalisation), y, names
    path = Path(root) / CACHE_DIR / f"{split}-{_cache_key(examples, normalisation)}.npz"
    with _cache_lock(path):
        X = _read_cache(path, y)
        if X is None:
            X = compute_features(examples, progress=progress, jobs=jobs,
                                 normalisation=normalisation)
            _write_cache(path, X, y)
    return X, y, names
