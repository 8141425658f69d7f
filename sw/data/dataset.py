"""int8 features of a whole split, computed once and cached next to the data.

Feature extraction costs about 1 ms a clip, so a full GSC split takes tens of
seconds; training runs many times, so the result is cached in
``ROOT/.cosparse-cache/<split>-<hash>.npz``.  The hash covers everything the
features depend on: each example's name (clip path, or noise window and
gain), each source file's size and mtime, and the feature parameters
(:func:`cosparse.sw.features.input_quant_spec`).  Change any of them and a new
cache file is written; stale ones are left for the user to delete.
"""
from __future__ import annotations

import hashlib
import json
import os
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from .. import features
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


def _features_of(example: Example) -> np.ndarray:
    from .gsc import load_example

    return features.audio_to_features(load_example(example))


def _cache_key(examples: list[Example]) -> str:
    digest = hashlib.sha256(json.dumps(features.input_quant_spec(), sort_keys=True).encode())
    stats: dict[Path, str] = {}
    for example in examples:
        if example.path not in stats:
            st = example.path.stat()
            stats[example.path] = f"{st.st_size}:{st.st_mtime_ns}"
        digest.update(f"{example.name}|{example.label}|{stats[example.path]}\n".encode())
    return digest.hexdigest()[:16]


def compute_features(examples: list[Example], *, progress: bool = True,
                     jobs: int | None = None) -> np.ndarray:
    """int8 [n, 1, 32, 32] features of ``examples``, over ``jobs`` processes.

    ``jobs`` defaults to the CPU count, at most 2 (the machines this targets);
    small lists are done in this process.
    """
    from tqdm import tqdm

    jobs = jobs or min(2, os.cpu_count() or 1)
    bar = dict(total=len(examples), desc="features", unit="clip", disable=not progress)
    out = np.zeros((len(examples),) + features.FEATURE_SHAPE, dtype=np.int8)
    if jobs == 1 or len(examples) < POOL_MIN:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for i, row in enumerate(tqdm(map(_features_of, examples), **bar)):
                out[i] = row
        return out
    with get_context(_START).Pool(jobs, _one_blas_thread) as pool:
        rows = pool.imap(_features_of, examples, chunksize=64)
        for i, row in enumerate(tqdm(rows, **bar)):
            out[i] = row
    return out


def load_features(root: str | os.PathLike, split: str, *, cache: bool = True,
                  progress: bool = True, jobs: int | None = None,
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
    examples = list_split(root, split, **split_options)
    names = [e.name for e in examples]
    y = np.array([e.label for e in examples], dtype=np.int64)
    path = Path(root) / CACHE_DIR / f"{split}-{_cache_key(examples)}.npz"
    if cache and path.is_file():
        with np.load(path) as cached:
            return cached["X"], cached["y"], names
    X = compute_features(examples, progress=progress, jobs=jobs)
    if cache:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, X=X, y=y)
        os.replace(tmp, path)
    return X, y, names
