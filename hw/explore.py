"""Design-space exploration: per-layer parallelism against interval and resources.

Every packed layer's engine has a few knobs (:class:`~.config.LayerConfig`:
lanes, offsets, engine kind, drain width, the local k-WTA's search bits).
With the cost model (hw/cost.py) each option of each layer is evaluated
once: its per-input cycles (engine and the unit after it) and its modelled
resources. A pipeline's interval is set by its slowest stage, so for a
target interval ``T`` each layer independently takes its cheapest option
whose stages stay within ``T``; sweeping ``T`` over every stage time that
occurs gives one balanced config per step. Each is then evaluated whole
(the interval from the per-input distributions, :func:`~.cost.interval_estimate`,
and the summed resources) and the configs that no other beats on both
interval and binding-resource fraction form the Pareto front.

"Cheapest" weighs each resource by its share of the budget
(``sum used_r / budget_r``), so a layer spends the resource the budget has
most of; multipliers break ties (fewer multipliers, higher efficiency).
"""

from __future__ import annotations

import dataclasses
from math import prod

import numpy as np

from ..boards.devices import RESOURCES
from ..sw.netspec import KWTA, Conv2d, NetSpec
from . import cost
from .config import HwConfig, winners_before
from .engine.tiling import Tiling

__all__ = ["layer_options", "explore", "Candidate"]

#: Clock assumed for UltraScale+ throughput figures until a vendor timing report exists.
CLOCK_HZ = 250e6


@dataclasses.dataclass
class Candidate:
    """One evaluated config: its model cycles and resources against the budget."""

    config: HwConfig
    interval: float
    latency: float
    bottleneck: str
    multipliers: int
    efficiency: float
    used: dict
    fraction: dict

    @property
    def binding(self) -> str:
        return max(self.fraction, key=self.fraction.get)

    @property
    def binding_fraction(self) -> float:
        return self.fraction[self.binding]

    @property
    def fits(self) -> bool:
        return self.binding_fraction <= 1.0

    def as_dict(self, spec: NetSpec) -> dict:
        return {"interval": round(self.interval, 1), "latency": round(self.latency, 1),
                "inputs_per_s": CLOCK_HZ / self.interval, "bottleneck": self.bottleneck,
                "multipliers": self.multipliers, "efficiency": round(self.efficiency, 4),
                "resources": {r: round(self.used[r], 1) for r in RESOURCES},
                "binding": self.binding, "binding_fraction": round(self.binding_fraction, 4),
                "fits": self.fits, "hw_config": self.config.to_dict(spec)}


def _lane_options(groups: int) -> list:
    """Lanes that give distinct pass counts: the fewest lanes for each ``ceil(G / lanes)``."""
    return sorted({-(-groups // passes) for passes in range(1, groups + 1)})


def layer_options(spec: NetSpec, index: int, base, default: HwConfig | None = None) -> list:
    """Every valid :class:`~.config.LayerConfig` of packed layer ``index`` the search tries,
    varying lanes, offsets, engine kind, accumulators, drain width and search bits from
    ``base`` (the default's choice for the layer); each is validated within ``default``
    (the other layers' configs and the global knobs; default: :meth:`HwConfig.default_for`)."""
    default = HwConfig.default_for(spec) if default is None else default
    layer = spec.packed_layers[index]
    at = spec.layers.index(layer)
    following = spec.layers[at + 1:][:2]
    kwta = next((l for l in following if isinstance(l, KWTA)), None)
    options = []
    lanes = _lane_options(layer.groups)
    if isinstance(layer, Conv2d):
        gather = winners_before(spec, layer) is not None
        engines = ["scatter"] + (["window"] if base.engine == "window" else []) \
            + (["gather"] if gather else [])
        offsets = []
        for o in range(1, layer.kernel ** 2 + 1):
            try:
                Tiling(layer.kernel, o, tuple(layer.out_shape[1:]), 1)
                offsets.append(o)
            except ValueError:
                pass
        bits = (2, 3) if kwta is not None and kwta.mode == "local" else (base.search_bits,)
        accs = ("word", "kernel") if base.accumulators == "kernel" else ("word",)
        for engine in engines:
            for lane in lanes:
                choices = {"scatter": offsets, "window": [layer.kernel ** 2],
                           "gather": range(1, layer.kernel ** 2 + 1)}[engine]
                for o in choices:
                    for b in bits:
                        for acc in (accs if engine == "scatter" else (base.accumulators,)):
                            options.append(dataclasses.replace(
                                base, engine=engine, lanes=lane, offsets=o, search_bits=b,
                                accumulators=acc))
    else:
        widths = [1]
        if kwta is not None and kwta.mode == "global" and following[0] is kwta:
            widths = [d for d in range(1, layer.n + 1) if layer.n % d == 0]
        for lane in lanes:
            for w in widths:
                options.append(dataclasses.replace(base, lanes=lane, width=w))
    valid = []
    for option in options:
        probe = list(default.layers)
        probe[index] = option
        try:
            dataclasses.replace(default, layers=tuple(probe)).validate(spec)
        except ValueError:
            continue
        valid.append(option)
    return valid


def input_widths(spec: NetSpec, base) -> list:
    """The ``input_width`` values the search tries: powers of two dividing the input's width
    W, above 1 only when the first engine can be a window engine (``base``, its default)."""
    w = spec.input.shape[-1]
    if not (isinstance(spec.packed_layers[0], Conv2d) and base.engine == "window"):
        return [1]
    return [b for b in (1 << i for i in range(w.bit_length())) if w % b == 0]


def _layer_table(prof: cost.Profile, index: int, options: list, budget: cost.Budget,
                 input_width: int = 1) -> list:
    """Per option: its config, stage time (the slower of its engine and the unit after it,
    the mean over inputs), its cycles, resources and a scalar cost against ``budget``."""
    rows = []
    limits = budget.as_dict()
    for option in options:
        cyc = cost.layer_cycles(prof, index, option, input_width)
        res = cost.unit_resources(prof, index, option)
        used = {r: res["engine"].get(r, 0) + res["after"].get(r, 0) for r in RESOURCES}
        time = max(float(np.mean(cyc["cycles"])), float(np.mean(cyc["after"])))
        weight = sum(used[r] / limits[r] for r in RESOURCES
                     if limits[r] not in (0, float("inf")))
        rows.append({"config": option, "time": time, "cycles": cyc, "resources": res,
                     "used": used, "cost": weight, "multipliers": option.multipliers(
                         prof.stages[index].layer, prof.stages[index].winners)})
    return rows


def _evaluate(prof, spec, budget, picks, input_width=1) -> Candidate:
    config = HwConfig(layers=tuple(row["config"] for row in picks), input_width=input_width)
    c = cost.cycles(prof, config, per_layer=[row["cycles"] for row in picks])
    used = cost.resources(spec, config, per_layer=[row["resources"] for row in picks])
    used = {r: used[r] for r in RESOURCES}
    return Candidate(config, c["interval"], c["latency"], c["bottleneck"], c["multipliers"],
                     c["efficiency"], used, budget.fraction(used))


def explore(spec: NetSpec, budget: cost.Budget, inputs=None, *, target_ii: float | None = None,
            prof: cost.Profile | None = None) -> dict:
    """Explore ``spec``'s per-layer knobs within ``budget`` on calibration ``inputs``.

    Returns ``front`` (the Pareto front of interval against binding-resource fraction,
    fastest first), ``chosen`` (the fastest config within the budget; with ``target_ii``,
    the one of least binding fraction at an interval no longer than it), ``efficient``
    (the highest efficiency within the budget at an interval no longer than the default's,
    or than ``target_ii``), ``default`` (the default config, evaluated the same way),
    ``candidates`` (how many balanced configs were evaluated), ``all`` (those configs)
    and ``profile`` (the :class:`~.cost.Profile` used).
    """
    prof = cost.profile(spec, inputs) if prof is None else prof
    default = HwConfig.default_for(spec)
    tables = [_layer_table(prof, i, layer_options(spec, i, base, default), budget)
              for i, base in enumerate(default.layers)]
    seen, candidates = set(), []
    for width in input_widths(spec, default.layers[0]):
        # A first window engine reading ``width`` features a beat: its own table at that beat.
        first = tables[0] if width == 1 else _layer_table(
            prof, 0, [c for c in layer_options(spec, 0, default.layers[0], default)
                      if c.engine == "window"], budget, width)
        by_layer = [first, *tables[1:]]
        floor = float(prof.input_cycles(width))
        targets = sorted({max(floor, row["time"]) for table in by_layer for row in table})
        for target in targets:
            for key in ("cost", "multipliers"):
                picks = []
                for table in by_layer:
                    fitting = [row for row in table if row["time"] <= target]
                    if not fitting:
                        break
                    picks.append(min(fitting,
                                     key=lambda row: (row[key], row["cost"], row["time"])))
                if len(picks) != len(by_layer):
                    continue
                ident = (width, *(id(row) for row in picks))
                if ident in seen:
                    continue
                seen.add(ident)
                candidates.append(_evaluate(prof, spec, budget, picks, width))
    default_picks = [next((row for row in table if row["config"] == cfg), None)
                     or _layer_table(prof, i, [cfg], budget, default.input_width)[0]
                     for i, (table, cfg) in enumerate(zip(tables, default.layers))]
    base = _evaluate(prof, spec, budget, default_picks, default.input_width)
    candidates.append(base)  # the per-stage balancing may miss it (means, not the estimate)
    front = []
    for cand in sorted(candidates, key=lambda c: (c.interval, c.binding_fraction)):
        if not front or cand.binding_fraction < front[-1].binding_fraction - 1e-12:
            front.append(cand)
    fitting = [c for c in candidates if c.fits]
    if target_ii is not None:
        within = [c for c in fitting if c.interval <= target_ii]
        chosen = min(within, key=lambda c: (c.binding_fraction, c.interval), default=None)
    else:
        chosen = min(fitting, key=lambda c: (c.interval, c.binding_fraction), default=None)
    limit = target_ii if target_ii is not None else base.interval
    efficient = max((c for c in fitting if c.interval <= limit),
                    key=lambda c: (c.efficiency, -c.interval), default=None)
    return {"front": front, "chosen": chosen, "efficient": efficient, "default": base,
            "candidates": len(candidates), "all": candidates, "profile": prof}
