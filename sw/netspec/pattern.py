"""Structured complementary patterns: which slot arrangements a packed layer's kernel ids follow.

A packed layer's ``kernel_ids[g, f]`` says which kernel of group ``g`` owns
fan-in slot ``f``. By default nothing constrains it (``random``: a random or
learned id per slot). A *pattern* restricts it so that training, the NetSpec
and the hardware can rely on structure:

``nm:N:M``
    The fan-in is cut into aligned *runs* of ``M`` consecutive slots
    (``f // M``; the last run may be shorter). In every run each kernel of
    a group owns at most ``N`` slots. With ``n`` kernels per group ``n * N
    == M`` is required, so a full group deals every slot of a run: each
    kernel then owns exactly ``N`` of every ``M`` consecutive weights (the
    N:M sparsity of sparse tensor cores), which balances the kernels.
``block:K``
    The fan-in is cut into *blocks* of ``K`` slots and every non-empty slot
    of a block belongs to the same kernel: one kernel id per block instead
    of one per weight. For a linear layer a block is ``K`` consecutive
    inputs (``f // K``). For a convolution (fan-in order ``f = c*k*k + ky*k
    + kx``) a block is ``K`` consecutive *input channels at one kernel
    offset*: slots ``c*k*k + o`` for ``c`` in ``[b*K, (b+1)*K)``. That is
    the axis the scatter engine's weight memory walks (one word per input
    channel and offset tile), so a block's id is stored once per ``K``
    channels; a run of consecutive ``(ky, kx)`` would instead cut across
    the offsets one memory word holds. The last block of an axis may be
    shorter (``C`` or the fan-in not a multiple of ``K``).

"Consecutive" is always along the packed fan-in order of docs/netspec.md
(PyTorch's flattened weight layout). Empty slots (no kernel) satisfy every
pattern; a pattern never forces a slot to be used.

This module is numpy only: the NetSpec reader checks kernel ids with it,
and the trainer (:mod:`cosparse.sw.model.patterns`) draws and projects
assignments with the same definitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "RANDOM", "Pattern", "parse_pattern"]

KINDS = ("random", "nm", "block")
EMPTY_SLOT = 255  # the NetSpec's empty-slot id (layers.EMPTY_SLOT; not imported: no cycle)
_SYNTAX = re.compile(r"random|nm:(\d+):(\d+)|block:(\d+)")


@dataclass(frozen=True)
class Pattern:
    """One pattern: ``random``, ``nm`` with ``N:M`` or ``block`` with ``K``.

    Use :func:`parse_pattern` to build one from its text form
    (``str(pattern)`` gives it back).
    """

    kind: str = "random"
    n: int = 0
    m: int = 0
    k: int = 0

    def __str__(self) -> str:
        if self.kind == "nm":
            return f"nm:{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.k}"
        return "random"

    @property
    def structured(self) -> bool:
        """False for ``random`` (nothing to check or exploit)."""
        return self.kind != "random"

    def check_group(self, n: int, where: str = "layer") -> None:
        """ValueError unless ``n`` kernels per group can follow the pattern (``nm``: n*N == M)."""
        if self.kind == "nm" and n * self.n != self.m:
            raise ValueError(f"{where}: pattern {self} needs n * N == M, but the layer packs "
                             f"n = {n} kernels per group ({n} * {self.n} = {n * self.n} != "
                             f"{self.m}); use nm:N:{n}N for this layer, e.g. nm:1:{n} or "
                             f"nm:2:{2 * n}")

    def units(self, fan_in: int, kernel: int = 1) -> np.ndarray:
        """The unit (N:M run, block) of every slot: int64 ``[fan_in]``, ascending ids from 0.

        ``random``: every slot its own unit. ``kernel`` is the convolution's
        kernel size (1 for a linear layer); only ``block`` uses it.
        """
        f = np.arange(fan_in, dtype=np.int64)
        if self.kind == "nm":
            return f // self.m
        if self.kind == "block":
            offsets = kernel * kernel
            return (f // offsets) // self.k * offsets + f % offsets
        return f

    def unit_count(self, fan_in: int, kernel: int = 1) -> int:
        """Number of units of :meth:`units` (``max + 1``)."""
        return int(self.units(fan_in, kernel).max(initial=-1)) + 1

    def violation(self, kernel_ids: np.ndarray, kernel: int = 1) -> str | None:
        """Where ``kernel_ids [groups, fan_in]`` (uint8, 255 empty) first breaks the pattern.

        Returns
        -------
        str or None
            ``None`` when every group follows the pattern, otherwise a
            sentence naming the first group and unit (block or run) that
            does not, its slots and the ids found there.
        """
        if not self.structured or kernel_ids.size == 0:
            return None
        groups, fan_in = kernel_ids.shape
        units = self.units(fan_in, kernel)
        count = int(units.max()) + 1
        ids = kernel_ids.astype(np.int64)
        used = ids != EMPTY_SLOT
        # owners[g, u, j]: slots of unit u in group g that kernel j owns.
        width = int(ids[used].max(initial=0)) + 1
        owners = np.zeros((groups, count, width), np.int64)
        g_idx = np.broadcast_to(np.arange(groups)[:, None], ids.shape)
        u_idx = np.broadcast_to(units[None, :], ids.shape)
        np.add.at(owners, (g_idx[used], u_idx[used], ids[used]), 1)
        if self.kind == "block":
            bad = (owners > 0).sum(axis=2) > 1
            what = "holds kernel ids {ids}: a block belongs to one kernel"
        else:
            bad = (owners > self.n).any(axis=2)
            what = f"gives a kernel more than N = {self.n} slots (ids {{ids}})"
        if not bad.any():
            return None
        g, u = map(int, np.argwhere(bad)[0])
        slots = np.flatnonzero(units == u)
        shown = ", ".join(map(str, slots[:8])) + (", ..." if slots.size > 8 else "")
        found = ", ".join(str(int(i)) for i in ids[g, slots])
        unit = "block" if self.kind == "block" else "run"
        return (f"group {g}, {unit} {u} (fan-in slots {shown}) "
                + what.format(ids=found))


RANDOM = Pattern()


def parse_pattern(text) -> Pattern:
    """The :class:`Pattern` of ``random``, ``nm:N:M`` or ``block:K``.

    Raises
    ------
    ValueError
        Naming the bad text and the accepted forms, or the bad number
        (``N``, ``M``, ``K`` >= 1 and ``N <= M``).
    """
    if isinstance(text, Pattern):
        return text
    if not isinstance(text, str):
        raise TypeError(f"pattern must be a string such as 'random', 'nm:2:4' or 'block:4', "
                        f"got {type(text).__name__} {text!r}")
    match = _SYNTAX.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"pattern {text!r} is not understood: use random, nm:N:M (each kernel "
                         f"owns N of every M consecutive slots) or block:K (one kernel per "
                         f"block of K slots)")
    n, m, k = (int(g) if g is not None else None for g in match.groups())
    if k is not None:
        if k < 1:
            raise ValueError(f"pattern {text!r}: block size K must be >= 1, got {k}")
        return Pattern("block", k=k)
    if n is not None:
        if n < 1 or m < 1 or n > m:
            raise ValueError(f"pattern {text!r}: nm:N:M needs 1 <= N <= M, got N = {n}, M = {m}")
        return Pattern("nm", n=n, m=m)
    return RANDOM
