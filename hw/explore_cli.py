"""``cosparse explore``: per-layer parallelism within a resource budget (hw/explore.py).

Prints the Pareto front of modelled interval against the binding resource's
fraction of the budget, writes the chosen config as ``<out>/hw_config.json``
(for ``cosparse generate --hw-config``), the front as ``<out>/front.json``
and a plot of it as ``<out>/front.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..sw import inputs

__all__ = ["register_cli", "format_front", "plot_front"]


def register_cli(subparsers):
    parser = subparsers.add_parser(
        "explore", help="per-layer parallelism within a resource budget: Pareto front + hw config",
        description="Search lanes, offsets, engine kind, drain width, k-WTA search bits and "
                    "input width per layer with the cost model (docs/explore.md): prints the "
                    "Pareto front (modelled interval against the binding resource), writes "
                    "<out>/hw_config.json (the chosen config: the fastest within the budget, "
                    "or with --target-ii the cheapest at that interval), <out>/front.json "
                    "and <out>/front.png.")
    inputs.add_netspec_argument(parser)
    parser.add_argument("--budget", required=True, metavar="BUDGET",
                        help="u250/20, u250 (80%% of the chip), zu3eg (80%%), ulx3s (80%%) or "
                             "LUT=..,DSP=..,BRAM=..[,FF=..,URAM=..] (unnamed: unlimited)")
    parser.add_argument("--target-ii", type=inputs.positive(float), metavar="N",
                        help="choose the config of least binding fraction whose modelled "
                             "interval is at most N cycles")
    parser.add_argument("--calibration", type=inputs.positive(int), default=16, metavar="N",
                        help="calibration inputs for the cycle model: the first N shipped "
                             "samples (default network) or N random inputs (--netspec); "
                             "default 16")
    parser.add_argument("--out", metavar="DIR", default="explore",
                        help="output folder (default: ./explore)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_run)


def format_front(result: dict, spec) -> str:
    """The front, the default and the chosen config as fixed-width lines."""
    rows = [("", "interval", "latency", "bottleneck", "mults", "eff", "binding", "fraction",
             "in/s @250MHz")]

    def row(label, c):
        d = c.as_dict(spec)
        rows.append((label, f"{d['interval']:.0f}", f"{d['latency']:.0f}", d["bottleneck"],
                     d["multipliers"], f"{d['efficiency']:.1%}", d["binding"],
                     f"{d['binding_fraction']:.3f}", f"{d['inputs_per_s']:,.0f}"))

    row("default", result["default"])
    for i, cand in enumerate(result["front"]):
        row(f"front {i}", cand)
    for key in ("chosen", "efficient"):
        if result[key] is not None:
            row(key, result[key])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.append(f"{result['candidates']} balanced configs evaluated; budget "
                 f"{result['budget'].name}")
    if result["chosen"] is None:
        lines.append("no config fits the budget (and --target-ii): hw_config.json not written")
    return "\n".join(lines)


def plot_front(result: dict, path) -> Path:
    """A PNG of every evaluated config and the front: interval against binding fraction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    every = result["all"]
    ax.scatter([c.binding_fraction for c in every], [c.interval for c in every], s=8,
               color="0.7", label="balanced configs")
    front = result["front"]
    ax.plot([c.binding_fraction for c in front], [c.interval for c in front], "o-",
            color="C0", label="Pareto front")
    base = result["default"]
    ax.scatter([base.binding_fraction], [base.interval], marker="s", color="C3",
               label="default", zorder=3)
    if result["chosen"] is not None:
        ax.scatter([result["chosen"].binding_fraction], [result["chosen"].interval],
                   marker="*", s=120, color="C2", label="chosen", zorder=4)
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"binding resource / budget ({result['budget'].name})")
    ax.set_ylabel("modelled interval (cycles per input)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _calibration(args, spec):
    from ..sw.netspec import random_inputs
    if args.netspec:
        return random_inputs(spec, args.calibration, seed=0)
    return inputs.default_samples(inputs.normalisation_for(spec)).x[:args.calibration]


def _run(args):
    from .config import save_hw_config
    from .cost import parse_budget
    from .explore import explore
    from .output import check_out

    budget = parse_budget(args.budget)  # before any work: a bad budget costs nothing
    out = check_out(args.out)
    spec = inputs.load_netspec(args)
    result = explore(spec, budget, _calibration(args, spec), target_ii=args.target_ii)
    result["budget"] = budget
    out.mkdir(parents=True, exist_ok=True)
    if result["chosen"] is not None:
        save_hw_config(result["chosen"].config, out / "hw_config.json", spec)
    limits = {r: (None if v == float("inf") else v) for r, v in budget.as_dict().items()}
    report = {"budget": {"name": budget.name, **limits},
              "calibration_inputs": result["profile"].inputs,
              "candidates": result["candidates"],
              "default": result["default"].as_dict(spec),
              "chosen": None if result["chosen"] is None else result["chosen"].as_dict(spec),
              "efficient": None if result["efficient"] is None
              else result["efficient"].as_dict(spec),
              "front": [c.as_dict(spec) for c in result["front"]]}
    (out / "front.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    plot_front(result, out / "front.png")
    print(json.dumps(report, indent=2, default=float) if args.json
          else format_front(result, spec))
    return 0 if result["chosen"] is not None else 1
