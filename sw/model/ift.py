"""Sparse Iso-FLOP Transformations (Sparse-IFT) at equal packed-slot cost.

Thangarasa et al. 2023, "Sparse-IFT: Sparse Iso-FLOP Transformations for
maximizing training efficiency", replace a dense layer by a sparse one of
the same FLOPs: *Sparse Wide* scales the widths by ``k = sqrt(1 / (1 - s))``
at sparsity ``s``; *Sparse Parallel* trains ``1 / (1 - s)`` sparse branches
whose outputs are summed. Here the cost that must stay equal is the
hardware's: a complementary layer's packed slots, ``ceil(C_out / n) *
fan_in``, which set its multipliers and weight memory.

- ``wide`` (:func:`sparse_wide`): every hidden width (conv1 and conv2
  channels, fc1's hidden units) times ``k``; a layer whose output and fan-in
  both grow by ``k`` packs ``n * k^2`` kernels per group, conv1 (its fan-in,
  one input channel, does not grow) and fc2 (its outputs, the classes, do
  not) ``n * k``. ``keep`` says what the k-WTAs keep: ``winners`` (the
  default) the number of winners per position and in the hidden layer (the
  density divided by ``k``), so every engine sees as many non-zero inputs
  as before and the initiation interval stays about the same; ``density``
  the density (``k`` times the winners), which keeps the useful MACs
  (``groups * active inputs``: ``groups / k`` groups, ``k`` times the
  inputs) but doubles the scatter engine's cycles, one active input a
  cycle. Neither keeps the multipliers: an engine multiplies at most one
  lane per packed group, and ``k`` times fewer groups (docs/model.md).
- ``parallel`` (:func:`sparse_parallel`): conv1, conv2 and fc1 train as
  ``1 / (1 - s)`` branches, each kernel's weights dealt to them, each branch
  batch-normalised, summed; each branch is a complementary layer of packing
  ``n / (1 - s)`` whose supports nest in the unbranched assignment. In eval
  mode the branches fold into one complementary layer with the unbranched
  shape, ``n`` and assignment (:meth:`~.gsc_net.GSCNet.folded`), so it
  exports to exactly the NetSpec and hardware of ``none``; only training
  differs.
"""
import math

from .gsc_net import NetConfig

DEFAULT_SPARSITY = 0.75
"""Sparse-IFT's sparsity ``s``: width factor 2 (``wide``), 4 branches (``parallel``)."""


def _factor(sparsity):
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"ift sparsity must be in [0, 1), got {sparsity!r}")
    return 1.0 / (1.0 - sparsity)


KEEP = ("winners", "density")
"""What Sparse Wide's k-WTAs keep: the number of winners, or the density."""


def sparse_wide(config, sparsity=DEFAULT_SPARSITY, keep="winners"):
    """``config`` widened by ``k = sqrt(1 / (1 - sparsity))`` at equal packed slots.

    ``keep``: ``winners`` divides the k-WTA densities by ``k`` (the same
    winners per position and in the hidden layer), ``density`` keeps them.

    Widths are rounded to whole channels and ``n`` to whole kernels; where
    ``C_out / n`` is then not whole the last group is partial and the slots
    differ slightly from the base network's (``count_parameters()``).
    """
    if config.ift != "none":
        raise ValueError(f"sparse_wide needs an untransformed config, got ift={config.ift!r}")
    if keep not in KEEP:
        raise ValueError(f"ift keep must be one of {', '.join(KEEP)}, got {keep!r}")
    k = math.sqrt(_factor(sparsity))
    scale = 1.0 / k if keep == "winners" else 1.0
    return config.replace(
        conv1_density=config.conv1_density * scale, conv2_density=config.conv2_density * scale,
        hidden_density=config.hidden_density * scale,
        conv1_channels=round(config.conv1_channels * k), n1=round(config.n1 * k),
        conv2_channels=round(config.conv2_channels * k), n2=round(config.n2 * k * k),
        hidden=round(config.hidden * k), n3=round(config.n3 * k * k),
        n4=round(config.n4 * k), ift="wide")


def sparse_parallel(config, sparsity=DEFAULT_SPARSITY):
    """``config`` with conv1, conv2 and fc1 trained as ``round(1 / (1 - sparsity))`` branches."""
    if config.ift != "none":
        raise ValueError(f"sparse_parallel needs an untransformed config, got ift={config.ift!r}")
    branches = round(_factor(sparsity))
    if branches < 2:
        raise ValueError(f"ift sparsity {sparsity} gives {branches} branch; Sparse Parallel "
                         f"needs at least 2 (sparsity >= 0.5)")
    return config.replace(branches=branches, ift="parallel")


def transform(config, variant, sparsity=DEFAULT_SPARSITY, keep="winners"):
    """``config`` under ``variant``: ``none``, ``wide`` (``keep``: what its k-WTAs keep) or
    ``parallel``."""
    if variant == "none":
        return config
    if variant == "wide":
        return sparse_wide(config, sparsity, keep)
    if variant == "parallel":
        return sparse_parallel(config, sparsity)
    raise ValueError(f"ift must be one of none, wide, parallel, got {variant!r}")
