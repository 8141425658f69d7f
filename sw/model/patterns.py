"""Structured complementary patterns in training: draws, projections and per-layer settings.

The patterns themselves (``random``, ``nm:N:M``, ``block:K``; what a run
and a block are, for linear and conv layers) are defined once in
:mod:`cosparse.sw.netspec.pattern`, which the NetSpec reader checks kernel
ids with. This module does the training side:

- :func:`draw`: a random assignment that follows a pattern (``--mask
  static``): blocks dealt to the group's kernels round-robin in a random
  order (kernels get equal numbers of blocks, within one), and in each N:M
  run a random permutation of its slots dealt ``N`` to each kernel.
- :func:`unit_index` / :func:`pool_units`: the L1 norm of each kernel's
  candidate weights over each block, the score at which ``magnitude`` and
  ``gmp`` prune and assign whole blocks (:mod:`.masks`).
- :func:`assign_nm`: the N:M projection of the candidates at the mask's
  commit: in each run, greedily, the largest remaining (kernel, slot)
  candidate is kept while its slot is free and its kernel owns fewer than
  ``N`` slots of the run.
- :func:`layer_patterns`: ``--pattern`` text, one pattern for every sparse
  layer or ``LAYER=PATTERN,...``, checked against each layer's packing
  factor.
"""
import math

import torch

from ..netspec.pattern import RANDOM, Pattern, parse_pattern

__all__ = ["draw", "unit_index", "pool_units", "assign_nm", "layer_patterns", "Pattern",
           "parse_pattern"]

EMPTY = -1  # complementary.EMPTY (not imported: complementary imports this module)


def unit_index(pattern, fan_in, kernel=1, device=None):
    """``[fan_in]`` long tensor: the unit (block, N:M run, or the slot itself) of every slot."""
    return torch.as_tensor(parse_pattern(pattern).units(fan_in, kernel), device=device)


def pool_units(values, units, count):
    """Sum ``values [rows, fan_in]`` over each unit: ``[rows, count]`` (exact for one-slot units)."""
    pooled = values.new_zeros(values.shape[0], count)
    return pooled.index_add_(1, units, values)


def draw(pattern, sizes, fan_in, generator=None, kernel=1):
    """A random complementary assignment ``[groups, fan_in]`` that follows ``pattern``.

    Parameters
    ----------
    pattern : Pattern or str
        ``block``: each group's blocks are permuted and dealt round-robin
        to its kernels. ``nm``: in each run of ``M`` slots a random
        permutation is dealt ``N`` slots per kernel (slots beyond ``n_g *
        N``, in a partial group, stay :data:`EMPTY`). ``random``: the
        slots themselves are the units, as
        :func:`~.complementary.complementary_assignment`.
    sizes : list of int
        Kernels per group (:func:`~.complementary.group_sizes`).
    fan_in : int
    generator : torch.Generator, optional
    kernel : int
        Convolution kernel size (blocks run along input channels), 1 for linear.
    """
    pattern = parse_pattern(pattern)
    slot_kernel = torch.empty(len(sizes), fan_in, dtype=torch.long)
    if pattern.kind == "nm":
        runs = -(-fan_in // pattern.m)
        for g, n_g in enumerate(sizes):
            keys = torch.rand(runs, pattern.m, generator=generator)
            rank = keys.argsort(1).argsort(1).view(-1)[:fan_in]
            kernel_of = rank // pattern.n
            slot_kernel[g] = torch.where(kernel_of < n_g, kernel_of, EMPTY)
        return slot_kernel
    units = unit_index(pattern, fan_in, kernel)
    count = int(units.max()) + 1
    deal = torch.arange(count)
    for g, n_g in enumerate(sizes):
        owner = torch.empty(count, dtype=torch.long)
        owner[torch.randperm(count, generator=generator)] = deal % n_g
        slot_kernel[g] = owner[units]
    return slot_kernel


def assign_nm(score, sizes, n, m):
    """Greedy N:M projection: kernel id ``[groups, fan_in]`` from candidate scores.

    Parameters
    ----------
    score : torch.Tensor
        ``[groups, n_max, fan_in]`` score of every (kernel, slot) candidate,
        larger is better (a dead candidate may be scored low but finite: it
        is used only where nothing better fits).
    sizes : list of int
        Kernels per group; rows past a group's size are never chosen.
    n, m : int
        ``N`` and ``M`` of the pattern.

    Returns
    -------
    torch.LongTensor
        Per run of ``m`` slots, each kernel owns at most ``n`` slots; a slot
        no kernel can take is :data:`EMPTY`.
    """
    groups, rows, fan_in = score.shape
    runs = -(-fan_in // m)
    padded = score.new_full((groups, rows, runs * m), -math.inf)
    padded[..., :fan_in] = score
    limit = torch.tensor(sizes, device=score.device)
    padded[torch.arange(rows, device=score.device)[None, :] >= limit[:, None]] = -math.inf
    s = padded.view(groups, rows, runs, m).permute(0, 2, 1, 3).reshape(groups * runs, rows, m)
    taken = torch.zeros(groups * runs, m, dtype=torch.bool, device=score.device)
    count = torch.zeros(groups * runs, rows, dtype=torch.long, device=score.device)
    kernel = torch.full((groups * runs, m), EMPTY, dtype=torch.long, device=score.device)
    every = torch.arange(groups * runs, device=score.device)
    for _ in range(m):
        blocked = taken[:, None, :] | (count >= n)[:, :, None]
        best, index = s.masked_fill(blocked, -math.inf).view(groups * runs, -1).max(1)
        ok = best > -math.inf
        if not ok.any():
            break
        rows_ok, j, p = every[ok], index[ok] // m, index[ok] % m
        kernel[rows_ok, p] = j
        taken[rows_ok, p] = True
        count[rows_ok, j] += 1
    return kernel.view(groups, runs * m)[:, :fan_in]


def layer_patterns(text, packing):
    """Per-layer :class:`Pattern` of a ``--pattern`` value.

    Parameters
    ----------
    text : str or None
        ``None`` / ``"random"``: no structure. One pattern (``nm:1:4``,
        ``block:4``): every layer with ``n > 1``. ``LAYER=PATTERN,...``:
        the named layers; the others random.
    packing : dict
        ``{layer name: n}`` in network order.

    Returns
    -------
    dict
        ``{layer name: Pattern}`` for every layer of ``packing`` (``random``
        for ``n == 1``: a dense layer has nothing to assign).

    Raises
    ------
    ValueError
        Naming an unknown layer, a repeated one, a bad pattern, or an
        ``nm:N:M`` whose ``M`` is not ``n * N`` for a layer's ``n``.
    """
    result = {name: RANDOM for name in packing}
    if text is None:
        return result
    if not isinstance(text, str):
        raise TypeError(f"pattern must be a string, got {type(text).__name__} {text!r}")
    if "=" not in text:
        pattern = parse_pattern(text)
        chosen = {name: pattern for name, n in packing.items() if n > 1}
    else:
        chosen = {}
        for item in text.split(","):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in packing:
                raise ValueError(f"pattern {item!r}: expected LAYER=PATTERN with LAYER one of "
                                 f"{', '.join(packing)}")
            if name in chosen:
                raise ValueError(f"pattern: layer {name!r} is given twice in {text!r}")
            chosen[name] = parse_pattern(value)
    for name, pattern in chosen.items():
        if packing[name] == 1 and pattern.structured:
            raise ValueError(f"pattern: layer {name!r} is dense (n = 1), a pattern has "
                             f"nothing to arrange there")
        pattern.check_group(packing[name], f"layer {name!r}")
        result[name] = pattern
    return result
