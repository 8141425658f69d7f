"""Complementary packing: overlay n sparse kernels with disjoint supports into one.

Kernels are grouped in output order (group g holds kernels g*n .. g*n+n-1),
which is the grouping docs/netspec.md fixes. Packing checks that the
supports of a group really are disjoint and names the first collision when
they are not: that is the only place an overlap can be caught, since the
packed form cannot represent one.
"""

from __future__ import annotations

import numpy as np

from ..netspec import EMPTY_SLOT

__all__ = ["PackingError", "pack", "unpack"]


class PackingError(ValueError):
    """Kernels that cannot be packed: overlapping supports or bad arguments."""


def pack(weight: np.ndarray, n: int, support: np.ndarray | None = None):
    """Pack a sparse weight ``[out, fan_in]`` into ``(weights [G, fan_in], kernel_ids [G, fan_in])``.

    Parameters
    ----------
    weight : ndarray [out, fan_in]
        Sparse weights of any dtype (kept as given in ``weights``).
    n : int
        Kernels per group.
    support : ndarray of bool [out, fan_in], optional
        Which positions each kernel owns. Defaults to ``weight != 0``; pass
        the model's mask to keep ownership of weights that happen to be 0.

    Returns
    -------
    weights : ndarray [G, fan_in], same dtype as ``weight``
    kernel_ids : ndarray uint8 [G, fan_in], EMPTY_SLOT where no kernel owns the slot

    Raises
    ------
    PackingError
        When two kernels of one group own the same position, or a weight is
        non-zero outside the support.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise PackingError(f"weight must be 2-D [out, fan_in], got shape {weight.shape}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= 254:
        raise PackingError(f"n must be an integer in [1, 254], got {n!r}")
    out, fan_in = weight.shape
    support = weight != 0 if support is None else np.asarray(support, bool)
    if support.shape != weight.shape:
        raise PackingError(f"support has shape {support.shape}, weight has {weight.shape}")
    outside = (weight != 0) & ~support
    if outside.any():
        o, f = map(int, np.argwhere(outside)[0])
        raise PackingError(f"weight[{o}, {f}] = {weight[o, f]} lies outside kernel {o}'s support")
    groups = -(-out // n)
    padded = np.zeros((groups * n, fan_in), bool)
    padded[:out] = support
    owners = padded.reshape(groups, n, fan_in)
    count = owners.sum(axis=1)
    if (count > 1).any():
        g, f = map(int, np.argwhere(count > 1)[0])
        kernels = [g * n + int(j) for j in np.flatnonzero(owners[g, :, f])]
        raise PackingError(f"kernels {kernels} of group {g} overlap at fan-in position {f}: "
                           f"complementary kernels must have disjoint supports")
    kernel_ids = np.where(count == 1, owners.argmax(axis=1), EMPTY_SLOT).astype(np.uint8)
    padded_weight = np.zeros((groups * n, fan_in), weight.dtype)
    padded_weight[:out] = weight
    packed = np.take_along_axis(padded_weight.reshape(groups, n, fan_in),
                                np.minimum(kernel_ids, n - 1)[:, None, :].astype(np.int64),
                                axis=1)[:, 0, :]
    packed = np.where(kernel_ids == EMPTY_SLOT, 0, packed).astype(weight.dtype)
    return packed, kernel_ids


def unpack(weights: np.ndarray, kernel_ids: np.ndarray, n: int, out: int) -> np.ndarray:
    """Inverse of :func:`pack`: the sparse weight ``[out, fan_in]``."""
    groups, fan_in = weights.shape
    dense = np.zeros((out, fan_in), weights.dtype)
    g, f = np.nonzero(kernel_ids != EMPTY_SLOT)
    dense[g * n + kernel_ids[g, f].astype(np.int64), f] = weights[g, f]
    return dense
