"""k-winners-take-all activations, after nupic.torch, with a hardware tie rule.

Training follows nupic.torch: winners are chosen on *boosted* values
``x * exp((target_density - duty_cycle) * boost_strength)`` so that units
that rarely win get a chance, the *unboosted* values of the winners pass on
and every other unit outputs 0. Duty cycles are running means of how often
each unit (each channel for the 2-D variant) wins, updated in training mode
only; boost strength decays by ``boost_strength_factor`` per epoch.

Two deliberate deviations, both so that the float model in eval mode is what
the integer hardware computes:

- eval mode applies **no boosting**: the hardware selects on raw values;
- ties are broken deterministically, **lower index wins** (lower channel for
  local k-WTA, lower flat ``(C, H, W)`` index for global k-WTA), the rule the
  hardware's comparators implement. ``torch.topk`` gives no such guarantee.

Also unlike nupic.torch, the duty cycle counts *wins* (the selection mask),
not positive outputs: a winner with a negative value still won.
"""
import torch
from torch import nn


def kwta_mask(scores, k, dim=-1):
    """Boolean mask of the ``k`` largest entries along ``dim``, ties to lower index.

    Everything strictly above the k-th largest value wins; among entries
    equal to it, the lowest indices fill the remaining places. Vectorised:
    one ``topk`` for the threshold and one cumulative count of ties.

    Parameters
    ----------
    scores : torch.Tensor
        Values to rank (floating point or integer).
    k : int
        Winners per slice, ``1 <= k <= scores.shape[dim]``.
    dim : int
        Dimension along which to select.

    Returns
    -------
    torch.BoolTensor
        Same shape as ``scores`` with exactly ``k`` True entries per slice.
    """
    size = scores.shape[dim]
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    if not 1 <= k <= size:
        raise ValueError(f"k = {k} is outside [1, {size}] for dimension {dim} of size {size}")
    if k == size:
        return torch.ones_like(scores, dtype=torch.bool)
    kth = scores.topk(k, dim=dim).values.narrow(dim, k - 1, 1)
    above = scores > kth
    tied = scores == kth
    free = k - above.sum(dim, keepdim=True)
    return above | (tied & (tied.cumsum(dim) <= free))


def kwta(x, k, dim=-1, scores=None):
    """Keep the values of the ``k`` winners along ``dim``, zero the rest.

    Parameters
    ----------
    x : torch.Tensor
        Values passed on for the winners.
    k : int
        Winners per slice.
    dim : int
        Selection dimension.
    scores : torch.Tensor, optional
        Values used to *choose* the winners (e.g. boosted ``x``); default
        ``x`` itself.

    Returns
    -------
    torch.Tensor
        ``x`` where the winners are, 0 elsewhere (gradient flows to winners).
    """
    mask = kwta_mask(x if scores is None else scores, k, dim)
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _k_from_density(units, density, name="density"):
    """``round(units * density)`` clamped to ``[1, units]``."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {density}")
    return max(1, min(units, round(units * density)))


class _KWinnersBase(nn.Module):
    """Duty cycles, boosting and k bookkeeping shared by both variants.

    Parameters
    ----------
    n_duty : int
        Units that have their own duty cycle (units, or channels in 2-D).
    density : float
        Fraction of units that win, in ``(0, 1]``.
    boost_strength : float
        Initial boost strength ``b >= 0``; 0 disables boosting.
    boost_strength_factor : float
        Multiplier applied by :meth:`update_boost_strength`, in ``[0, 1]``.
    duty_cycle_period : int
        Averaging period of the duty cycles, in samples.
    k_inference_factor : float
        Scales k in eval mode (nupic.torch); 1.0 keeps it equal to training.
    noise : float
        Standard deviation of Gaussian noise added to the input in training
        mode only (0: none). Winners are chosen on, and pass on, the noisy
        values, so the layers after learn not to depend on which of two
        near-equal units wins: the re-ordering int8 rounding causes.
    """

    def __init__(self, n_duty, density, boost_strength, boost_strength_factor,
                 duty_cycle_period, k_inference_factor, noise=0.0):
        super().__init__()
        _k_from_density(1, density)
        if boost_strength < 0:
            raise ValueError(f"boost_strength must be >= 0, got {boost_strength}")
        if not 0.0 <= boost_strength_factor <= 1.0:
            raise ValueError(f"boost_strength_factor must be in [0, 1], got {boost_strength_factor}")
        if duty_cycle_period < 1:
            raise ValueError(f"duty_cycle_period must be >= 1, got {duty_cycle_period}")
        if k_inference_factor <= 0:
            raise ValueError(f"k_inference_factor must be > 0, got {k_inference_factor}")
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self.density = float(density)
        self.boost_strength_factor = float(boost_strength_factor)
        self.duty_cycle_period = int(duty_cycle_period)
        self.k_inference_factor = float(k_inference_factor)
        # Buffers, so they are checkpointed and a resumed run is exact.
        self.register_buffer("boost_strength", torch.tensor(float(boost_strength)))
        self.register_buffer("duty_cycle", torch.zeros(n_duty))
        self.register_buffer("learning_iterations", torch.zeros((), dtype=torch.long))

    def k_for(self, units, training=None):
        """k for a slice of ``units`` values in training or eval mode.

        Parameters
        ----------
        units : int
            Size of the slice the winners are chosen from.
        training : bool, optional
            Default: the module's current mode.
        """
        training = self.training if training is None else training
        density = self.density if training else self.density * self.k_inference_factor
        return _k_from_density(units, min(density, 1.0), "density * k_inference_factor")

    def _perturbed(self, x):
        """``x`` plus the training noise (call in training mode only)."""
        return x + self.noise * torch.randn_like(x) if self.noise else x

    def update_boost_strength(self):
        """Decay the boost strength by ``boost_strength_factor`` (once per epoch)."""
        self.boost_strength.mul_(self.boost_strength_factor)

    def _boost_factors(self):
        """``exp((density - duty_cycle) * boost_strength)`` per duty unit."""
        return torch.exp((self.density - self.duty_cycle) * self.boost_strength)

    @torch.no_grad()
    def _update_duty_cycle(self, wins_per_unit, batch_size):
        """Running mean of wins over ``duty_cycle_period`` samples (nupic.torch).

        Parameters
        ----------
        wins_per_unit : torch.Tensor
            Wins of each duty unit summed over the batch, shape ``[n_duty]``
            (for 2-D, a channel's wins averaged over the positions).
        batch_size : int
        """
        self.learning_iterations += batch_size
        period = min(self.duty_cycle_period, int(self.learning_iterations))
        self.duty_cycle.mul_(period - batch_size).add_(wins_per_unit).div_(period)


class KWinners(_KWinnersBase):
    """Global k-WTA over the units of each sample, input ``[B, n_units]``.

    Parameters
    ----------
    n_units : int
        Units per sample.
    density : float
        ``k = round(n_units * density)``, at least 1.
    boost_strength, boost_strength_factor, duty_cycle_period, k_inference_factor, noise
        See :class:`_KWinnersBase`.

    Attributes
    ----------
    k : int
        Winners per sample in training.
    k_inference : int
        Winners per sample in eval mode (what the hardware uses).
    """

    def __init__(self, n_units, density, boost_strength=1.0, boost_strength_factor=0.9,
                 duty_cycle_period=1000, k_inference_factor=1.0, noise=0.0):
        if n_units < 1:
            raise ValueError(f"n_units must be >= 1, got {n_units}")
        super().__init__(n_units, density, boost_strength, boost_strength_factor,
                         duty_cycle_period, k_inference_factor, noise)
        self.n_units = int(n_units)
        self.local = False

    @property
    def k(self):
        return self.k_for(self.n_units, training=True)

    @property
    def k_inference(self):
        return self.k_for(self.n_units, training=False)

    def forward(self, x):
        if x.dim() != 2 or x.shape[1] != self.n_units:
            raise ValueError(f"KWinners expects [B, {self.n_units}], got {tuple(x.shape)}")
        if not self.training:
            return kwta(x, self.k_inference, dim=1)
        x = self._perturbed(x)
        out_mask = kwta_mask(x * self._boost_factors(), self.k, dim=1)
        self._update_duty_cycle(out_mask.sum(0, dtype=torch.float), x.shape[0])
        return torch.where(out_mask, x, torch.zeros((), dtype=x.dtype))

    def extra_repr(self):
        return f"n_units={self.n_units}, k={self.k}, k_inference={self.k_inference}"


class KWinners2d(_KWinnersBase):
    """k-WTA on ``[B, C, H, W]``: local (across channels per position) or global.

    Parameters
    ----------
    channels : int
        ``C``; duty cycles and boosting are per channel.
    density : float
        Local: ``k = round(C * density)`` per position. Global:
        ``k = round(C*H*W * density)`` per sample.
    local : bool
        Local (per-position, as used for conv layers) or global selection.
    boost_strength, boost_strength_factor, duty_cycle_period, k_inference_factor, noise
        See :class:`_KWinnersBase`.

    Attributes
    ----------
    k, k_inference : int
        Local variant only: winners per position in training / eval mode.
        For the global variant use :meth:`k_for` with ``C*H*W``.
    """

    def __init__(self, channels, density, local=True, boost_strength=1.0,
                 boost_strength_factor=0.9, duty_cycle_period=1000, k_inference_factor=1.0,
                 noise=0.0):
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        super().__init__(channels, density, boost_strength, boost_strength_factor,
                         duty_cycle_period, k_inference_factor, noise)
        self.channels = int(channels)
        self.local = bool(local)

    def _local_only(self):
        if not self.local:
            raise AttributeError("global KWinners2d has no fixed k: use k_for(C*H*W)")

    @property
    def k(self):
        self._local_only()
        return self.k_for(self.channels, training=True)

    @property
    def k_inference(self):
        self._local_only()
        return self.k_for(self.channels, training=False)

    def _select(self, scores, x):
        """Mask of winners of ``scores`` ([B, C, H, W]) in the current mode."""
        if self.local:
            return kwta_mask(scores, self.k_for(self.channels), dim=1)
        flat = scores.reshape(scores.shape[0], -1)
        return kwta_mask(flat, self.k_for(flat.shape[1]), dim=1).view_as(x)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"KWinners2d expects [B, {self.channels}, H, W], got {tuple(x.shape)}")
        if not self.training:
            mask = self._select(x, x)
        else:
            x = self._perturbed(x)
            mask = self._select(x * self._boost_factors().view(1, -1, 1, 1), x)
            positions = x.shape[2] * x.shape[3]
            wins = mask.sum((0, 2, 3), dtype=torch.float) / positions
            self._update_duty_cycle(wins, x.shape[0])
        return torch.where(mask, x, torch.zeros((), dtype=x.dtype))

    def extra_repr(self):
        kind = f"local, k={self.k}, k_inference={self.k_inference}" if self.local else "global"
        return f"channels={self.channels}, density={self.density}, {kind}"
