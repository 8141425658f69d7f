"""Learned complementary masks: which kernel of a group owns each packed slot.

A complementary layer (:mod:`cosparse.sw.model.complementary`) stores each
group of ``n`` kernels as one packed kernel of ``fan_in`` slots, each slot
owned by at most one kernel (``slot_kernel``; :data:`EMPTY`: by none). The
static method draws that ownership at random once and never changes it. The
schedulers here learn it, and every one of them keeps each group a partition
of the fan-in at every step, so the packed engine runs the result unchanged:

- ``magnitude`` (one-shot pruning): each slot starts with ``n_g`` dense
  *candidate* weights, one per kernel of its group, trained as an ordinary
  dense layer. At the prune point every slot goes to the kernel whose
  candidate has the largest ``|w|`` and keeps that weight; training then
  fine-tunes the packed form.
- ``gmp`` (gradual magnitude pruning, Zhu & Gupta 2017, "To prune, or not to
  prune"): the same candidates, pruned every ``every`` steps along the cubic
  schedule ``alive = S + (C - S) (1 - t / T)^3`` from all ``C`` candidates to
  one per slot (``S`` slots) at step ``T``. A slot's largest alive candidate
  is never pruned, so each slot keeps at least one and the end point is
  exactly one per slot; then the packed form is fine-tuned.
- ``set`` (Mocanu et al. 2018) and ``rigl`` (Evci et al. 2020): dynamic
  sparse training on the packed form itself. Every ``every`` steps until
  step ``T`` a fraction ``drop/2 (1 + cos(pi t / T))`` of the active slots,
  those of smallest ``|w|``, is dropped (slot -> EMPTY: back to the group's
  free pool), and as many (slot, kernel) pairs among the empty slots are
  grown: SET at random (a random empty slot, a random kernel of its group),
  RigL where the dense weight's gradient on the current batch is largest
  (at most one kernel per slot). Grown weights start at 0; the optimiser's
  state of every changed slot is reset, so an empty slot's weight is 0 and
  stays 0.

Kernels are not balanced: magnitude picks any kernel per slot, so kernel
fan-ins drift apart (the hardware does not need equal fan-ins: a packed
kernel computes all of its group's kernels in one pass whatever the split).

Only layers with ``n > 1`` are touched; a dense layer has nothing to assign.

A layer with a structured pattern (:mod:`.patterns`) keeps it: ``magnitude``
and ``gmp`` prune and assign whole blocks of a ``block`` pattern (a unit's
score: the L1 norm of its alive candidates over the block) and, for an
``nm`` pattern, protect the N:M projection of the scores instead of each
slot's best, so the schedule ends on an N:M assignment. ``set`` and
``rigl`` move single slots and refuse a structured pattern.
"""
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .complementary import EMPTY, _CompSparseBase, group_sizes
from .patterns import assign_nm, parse_pattern, pool_units, unit_index

METHODS = ("static", "magnitude", "gmp", "set", "rigl")
"""``--mask`` choices; ``static`` is the random, frozen assignment."""

_DEFAULT_END = {"static": 1.0, "magnitude": 0.5, "gmp": 0.5, "set": 0.75, "rigl": 0.75}


@dataclass(frozen=True)
class MaskSettings:
    """How the complementary masks are learned.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    end : float or None
        Fraction of the training steps at which the mask is final: the
        prune point of ``magnitude``, the end of ``gmp``'s schedule, the last
        update of ``set`` / ``rigl``. ``None``: 0.5 for pruning, 0.75 for
        dynamic sparse training.
    drop : float
        ``set`` / ``rigl``: fraction of active slots dropped at the first
        update (cosine-decayed to 0 at ``end``).
    every : int
        Steps (batches) between mask updates (``gmp``, ``set``, ``rigl``).
    """

    method: str = "static"
    end: float = None
    drop: float = 0.3
    every: int = 50

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"mask method must be one of {', '.join(METHODS)}, "
                             f"got {self.method!r}")
        if self.end is None:
            object.__setattr__(self, "end", _DEFAULT_END[self.method])
        if not 0.0 < self.end <= 1.0:
            raise ValueError(f"mask end must be a fraction of training in (0, 1], "
                             f"got {self.end!r}")
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError(f"mask drop must be a fraction in [0, 1], got {self.drop!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"mask every must be a positive int (steps), got {self.every!r}")

    def as_dict(self):
        """Plain dict for checkpoints and NetSpec metadata (``static``: the method alone)."""
        return {"method": "static"} if self.method == "static" else asdict(self)


def gmp_alive(slots, candidates, progress):
    """Alive candidates of the cubic schedule at ``progress`` in [0, 1] (clipped).

    Parameters
    ----------
    slots : int
        Candidates left at the end: one per slot.
    candidates : int
        Candidates at the start: one per (slot, kernel of its group).
    progress : float
        ``t / T``.

    Returns
    -------
    int
        ``round(S + (C - S) (1 - progress)^3)``: ``C`` at 0, ``S`` at 1,
        never increasing.
    """
    progress = min(max(progress, 0.0), 1.0)
    return int(round(slots + (candidates - slots) * (1.0 - progress) ** 3))


def drop_fraction(drop, progress):
    """Cosine-decayed drop fraction ``drop/2 (1 + cos(pi progress))`` of SET and RigL."""
    return drop / 2 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def learnable_layers(model):
    """``(name, layer)`` of every complementary layer with ``n > 1``, in module order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, _CompSparseBase) and m.n > 1]


def _padded_view(layer, tensor, fill, width=None):
    """``[groups, n, width]`` view of an ``[out, width]`` tensor (width: fan-in by default),
    padded rows = ``fill``."""
    width = layer.fan_in if width is None else width
    rows = layer.groups * layer.n
    if rows != layer.out_features:
        pad = tensor.new_full((rows - layer.out_features, width), fill)
        tensor = torch.cat([tensor, pad])
    return tensor.view(layer.groups, layer.n, width)


class MaskScheduler:
    """Common driver: the training loop calls :meth:`before_forward` and
    :meth:`after_step` around each optimiser step.

    Parameters
    ----------
    model : nn.Module
        Holds the complementary layers.
    settings : MaskSettings
    total_steps : int
        Optimiser steps of the whole run; ``end`` is a fraction of them.
    seed : int
        Seeds the scheduler's own random draws (never the global RNG, so
        model init and data order are those of a static run).
    """

    def __init__(self, model, settings, total_steps, seed):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.settings = settings
        self.layers = learnable_layers(model)
        self.end_step = max(1, round(settings.end * total_steps))
        self.step = 0
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)

    deployable = True
    """Whether the model's packed form is the trained model (best.pt may be saved)."""

    def parameters(self):
        """Extra trainable tensors the optimiser must also update."""
        return []

    def before_forward(self):
        """Called before each training batch's forward pass."""

    def after_step(self, optimizer):
        """Called after each ``optimizer.step()``."""
        self.step += 1

    def finish(self):
        """Leave every layer on its packed weights (end of training)."""
        for _, layer in self.layers:
            layer.weight_source = None

    def state_dict(self):
        return {"step": self.step, "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.step = state["step"]
        self.generator.set_state(state["generator"])


class CandidatePruning(MaskScheduler):
    """``magnitude`` and ``gmp``: dense candidates pruned to one kernel per slot."""

    def __init__(self, model, settings, total_steps, seed):
        super().__init__(model, settings, total_steps, seed)
        self.committed = False
        self.candidates, self.alive = [], []
        for _, layer in self.layers:
            bound = 1.0 / math.sqrt(layer.fan_in)  # PyTorch's default init of a dense layer
            init = torch.rand(layer.out_features, layer.fan_in, generator=self.generator)
            cand = nn.Parameter(((init * 2 - 1) * bound).to(layer.packed.device))
            self.candidates.append(cand)
            self.alive.append(torch.ones_like(cand, dtype=torch.bool))
        self._attach()

    @property
    def deployable(self):
        return self.committed

    def _attach(self):
        for (_, layer), cand, alive in zip(self.layers, self.candidates, self.alive):
            layer.weight_source = lambda _layer, c=cand, a=alive: c * a

    def parameters(self):
        return list(self.candidates)

    def after_step(self, optimizer):
        super().after_step(optimizer)
        if self.committed:
            return
        with torch.no_grad():
            for cand, alive in zip(self.candidates, self.alive):
                cand.mul_(alive)  # momentum must not revive a pruned candidate's value
        if self.step >= self.end_step:
            self.prune(1.0)  # the schedule's end point: exactly one candidate per slot (unit)
            self.commit()
        elif self.settings.method == "gmp" and self.step % self.settings.every == 0:
            self.prune(self.step / self.end_step)

    def _units(self, layer):
        """Slot -> unit index and unit count of ``layer``'s pruning granularity.

        A ``block`` pattern prunes and assigns whole blocks (each kernel's
        candidates of a block scored by their L1 norm); ``random`` and
        ``nm`` single slots (``nm`` is imposed when the mask is committed).
        """
        pattern = parse_pattern(layer.pattern)
        if pattern.kind != "block":
            pattern = parse_pattern("random")
        units = unit_index(pattern, layer.fan_in, layer.pattern_kernel, layer.packed.device)
        return units, int(units.max()) + 1

    @torch.no_grad()
    def prune(self, progress):
        """Prune every layer's candidates down to :func:`gmp_alive` at ``progress``.

        Counted in units (slots, or whole blocks of a ``block`` pattern): a
        unit's score is the L1 norm of its alive candidates.
        """
        for (_, layer), cand, alive in zip(self.layers, self.candidates, self.alive):
            units, count = self._units(layer)
            target = gmp_alive(layer.groups * count, layer.out_features * count, progress)
            unit_alive = pool_units(alive.float(), units, count) > 0
            excess = int(unit_alive.sum()) - target
            if excess <= 0:
                continue
            norm = pool_units(torch.where(alive, cand.abs(), torch.zeros_like(cand)), units, count)
            score = torch.where(unit_alive, norm, torch.full_like(norm, -1.0))
            protect = self._protected(layer, _padded_view(layer, score, -1.0, count))
            protect = protect.view(-1, count)[:layer.out_features]
            score = torch.where(unit_alive & ~protect, norm, torch.full_like(norm, math.inf))
            drop = torch.topk(score.view(-1), excess, largest=False).indices
            unit_alive.view(-1)[drop] = False
            alive.copy_(unit_alive[:, units])
            cand.mul_(alive)

    @staticmethod
    def _protected(layer, view):
        """``[groups, n, units]`` candidates pruning must keep: each unit's best (``nm``: the
        N:M projection of the scores, so the schedule ends on an N:M assignment)."""
        pattern = parse_pattern(layer.pattern)
        if pattern.kind == "nm":
            kernel = assign_nm(view, group_sizes(layer.out_features, layer.n), pattern.n,
                               pattern.m)
            protect = torch.zeros_like(view, dtype=torch.bool)
            owned = kernel != EMPTY
            return protect.scatter_(1, kernel.clamp(min=0).unsqueeze(1), owned.unsqueeze(1))
        best = view.argmax(1, keepdim=True)  # each unit's largest alive candidate stays
        return torch.zeros_like(view, dtype=torch.bool).scatter_(1, best, True)

    @torch.no_grad()
    def commit(self):
        """Hand each slot (block) to its largest alive candidate's kernel; train packed from here.

        An ``nm`` layer is projected instead (:func:`~.patterns.assign_nm`):
        per run, the largest candidates whose kernel still owns fewer than
        ``N`` slots of the run; a dead candidate (scored -1) only fills a
        slot no alive one can take, with weight 0.
        """
        for (_, layer), cand, alive in zip(self.layers, self.candidates, self.alive):
            pattern = parse_pattern(layer.pattern)
            score = torch.where(alive, cand.abs(), torch.full_like(cand, -1.0))
            if pattern.kind == "nm":
                sizes = group_sizes(layer.out_features, layer.n)
                slot_kernel = assign_nm(_padded_view(layer, score, -1.0), sizes, pattern.n,
                                        pattern.m)
                kernel = slot_kernel.clamp(min=0)
            else:
                units, count = self._units(layer)
                unit_alive = pool_units(alive.float(), units, count) > 0
                norm = pool_units(torch.where(alive, cand.abs(), torch.zeros_like(cand)),
                                  units, count)
                unit_score = _padded_view(layer, torch.where(unit_alive, norm,
                                                             torch.full_like(norm, -1.0)),
                                          -1.0, count)
                kernel = unit_score.argmax(1)[:, units]
                any_alive = _padded_view(layer, unit_alive, False, count).any(1)[:, units]
                slot_kernel = torch.where(any_alive, kernel, torch.full_like(kernel, EMPTY))
            weight = _padded_view(layer, cand.detach(), 0.0).gather(1, kernel.unsqueeze(1))[:, 0]
            layer.set_assignment(slot_kernel, weight)
            layer.weight_source = None
        self.committed = True

    def state_dict(self):
        """Step, RNG, the alive masks and the candidate weights (a resumed run continues exactly)."""
        return {**super().state_dict(), "committed": self.committed,
                "alive": [a.cpu() for a in self.alive],
                "candidates": [c.detach().cpu() for c in self.candidates]}

    @torch.no_grad()
    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.committed = state["committed"]
        for alive, cand, saved_alive, saved in zip(self.alive, self.candidates, state["alive"],
                                                   state["candidates"]):
            alive.copy_(saved_alive)
            cand.copy_(saved)
        if self.committed:
            self.finish()


class DynamicSparse(MaskScheduler):
    """``set`` and ``rigl``: drop the smallest slots, regrow as many, on the packed form."""

    def __init__(self, model, settings, total_steps, seed):
        super().__init__(model, settings, total_steps, seed)
        structured = [(name, layer.pattern) for name, layer in self.layers
                      if layer.pattern != "random"]
        if structured:
            name, pattern = structured[0]
            raise ValueError(f"--mask {settings.method} drops and grows single slots and would "
                             f"break layer {name!r}'s pattern {pattern}; use --mask static, "
                             f"magnitude or gmp with a pattern")
        self._dense = {}

    def _update_due(self, step):
        return step % self.settings.every == 0 and step <= self.end_step

    def before_forward(self):
        if self.settings.method == "rigl" and self._update_due(self.step + 1):
            for name, layer in self.layers:
                layer.weight_source = lambda lay, key=name: self._retained(key, lay)

    def _retained(self, key, layer):
        weight = layer.packed_weight_2d()
        weight.retain_grad()
        self._dense[key] = weight
        return weight

    def after_step(self, optimizer):
        super().after_step(optimizer)
        if self._update_due(self.step):
            self.update(drop_fraction(self.settings.drop, self.step / self.end_step), optimizer)
        self.finish()
        self._dense = {}

    @torch.no_grad()
    def update(self, fraction, optimizer=None):
        """Drop ``fraction`` of each layer's active slots and regrow as many."""
        for name, layer in self.layers:
            slot_kernel = layer.slot_kernel.long().clone()
            packed = layer.packed.detach().clone()
            active = slot_kernel != EMPTY
            count = int(round(fraction * int(active.sum())))
            if count == 0:
                continue
            score = torch.where(active, packed.abs(), torch.full_like(packed, math.inf))
            dropped = torch.topk(score.view(-1), count, largest=False).indices
            slot_kernel.view(-1)[dropped] = EMPTY
            grown, kernels = self._grow(name, layer, slot_kernel, count)
            slot_kernel.view(-1)[grown] = kernels
            changed = torch.zeros(slot_kernel.numel(), dtype=torch.bool, device=packed.device)
            changed[dropped] = True
            changed[grown] = True
            changed = changed.view_as(packed)
            layer.set_assignment(slot_kernel, torch.where(changed, 0.0, packed))
            if optimizer is not None:  # a new or emptied slot starts without momentum
                for value in optimizer.state.get(layer.packed, {}).values():
                    if torch.is_tensor(value) and value.shape == packed.shape:
                        value[changed] = 0

    def _grow(self, name, layer, slot_kernel, count):
        """Flat slot indices and kernel ids of ``count`` grown (slot, kernel) pairs."""
        empty = (slot_kernel == EMPTY).view(-1)
        sizes = torch.tensor(group_sizes(layer.out_features, layer.n),
                             device=slot_kernel.device)
        if self.settings.method == "set":
            pool = empty.nonzero().squeeze(1)
            pick = torch.randperm(pool.numel(), generator=self.generator)[:count]
            slots = pool[pick.to(pool.device)]
            n_g = sizes[slots // layer.fan_in]
            draw = torch.rand(slots.numel(), generator=self.generator).to(slots.device)
            return slots, (draw * n_g).long().clamp(max=n_g - 1)
        grad = self._dense[name].grad
        if grad is None:
            raise RuntimeError(f"rigl: no dense gradient for layer {name!r}; call "
                               f"before_forward() before the forward pass of an update step")
        score = _padded_view(layer, grad.abs(), -1.0)
        best, kernel = score.max(1)
        best = torch.where(empty.view_as(best), best, torch.full_like(best, -math.inf))
        slots = torch.topk(best.view(-1), min(count, int(empty.sum()))).indices
        return slots, kernel.view(-1)[slots]


def make_scheduler(settings, model, total_steps, seed):
    """The scheduler of ``settings.method``, or ``None`` for ``static``."""
    if settings.method == "static":
        return None
    kind = CandidatePruning if settings.method in ("magnitude", "gmp") else DynamicSparse
    return kind(model, settings, total_steps, seed)
