"""Sparse-IFT (Sparse Wide, Sparse Parallel) at equal packed slots, one training budget.

For each run (a ``--mask`` method and an ``--ift`` variant): ``cosparse
train`` with docs/sparsity.md's recipe, ``cosparse export`` of its
``best.pt``, ``cosparse evaluate --json`` on the testing split and the
golden model's mean useful MACs per input, as bench/patterns.py; then one
markdown row per run. ``--seed S`` trains with ``--seed S --mask-seed S``
into ``OUT/RUN-seedS``. Runs already done (an ``eval.json`` in their
folder) are not redone.

    python bench/ift.py --data DATA --out runs/ift --epochs 30 [--runs gmp-wide,...] [--seed 1]

``--table DIR[:HW.json]...`` trains nothing: it prints docs/sparsity.md's
summary row of each finished run folder (this bench's, bench/patterns.py's
or bench/masks.py's), with the initiation interval and multipliers of
``cosparse.hw.generate.summary`` (what ``cosparse generate`` prints) for its
NetSpec, under the default hardware config or the one given after the
folder (``cosparse generate --hw-config``'s JSON).
"""
import argparse
import json
import sys
from pathlib import Path

from masks import row, train_and_evaluate

RUNS = {f"{mask}-{ift}": (mask, ["--ift", ift]) for mask in ("gmp", "static")
        for ift in ("none", "wide", "parallel")}
RUNS.update({f"{mask}-wide-density": (mask, ["--ift", "wide", "--ift-keep", "density"])
             for mask in ("gmp", "static")})
"""``none``: the baseline (for other seeds); ``wide``: the k-WTAs keep their winners;
``wide-density``: their density."""


HIGH_SNR = ("25-30", "30-35", "35-40", "40-45", "clean")


def _band(report, bands):
    """Golden accuracy (float in brackets) over the ``by_snr`` bands ``bands``, clip-weighted."""
    rows = [report["by_snr"][b] for b in bands]
    total = sum(r["inputs"] for r in rows)
    mean = lambda key: sum(r[key] * r["inputs"] for r in rows) / total  # noqa: E731
    return f"{100 * mean('golden_accuracy'):.1f}% ({100 * mean('float_accuracy'):.1f}%)"


def summary_row(folder, hw_config=None):
    """One row of docs/sparsity.md's summary table for a finished run ``folder``."""
    from cosparse.hw.config import HwConfig
    from cosparse.hw.generate import summary
    from cosparse.sw import netspec
    report = json.loads((folder / "eval.json").read_text())
    meta = netspec.load_metadata(folder / "netspec")
    spec = netspec.load(folder / "netspec")
    config = None if hw_config is None else HwConfig.from_dict(
        json.loads(Path(hw_config).read_text()), spec)
    hw = summary(spec, config)
    held = [e for e in report["by_engine"].values() if e["held_out"]][0]["all"]
    cell = lambda e: (f"{100 * e['golden_accuracy']:.1f}% "  # noqa: E731
                      f"({100 * e['float_accuracy']:.1f}%)")
    epochs = len((folder / "metrics.jsonl").read_text().splitlines())
    ift = meta.get("ift", {"variant": "none", "branches": 1})
    winners = "/".join(str(layer.k) for layer in spec.layers if layer.kind == "kwta")
    return (f"| {epochs} | `{meta['mask']['method']}` | {meta['pattern']} | {ift['variant']} | "
            f"{winners} | "
            f"{cell(held)} | {cell(report['by_engine']['espeak-ng']['20-45+clean'])} | "
            f"{_band(report, ('0-5',))} | {cell(report['by_snr_range']['5-25'])} | "
            f"{_band(report, HIGH_SNR)} | {100 * report['golden_agrees_with_float_sparse']:.1f}% | "
            f"{report['mean_useful_macs']:,.0f} | {hw['initiation_interval']:,.0f} "
            f"({hw['bottleneck']}{'' if hw_config is None else ', ' + Path(hw_config).name}) | "
            f"{hw['multipliers']} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--seed", type=int, default=0,
                        help="--seed and --mask-seed of every run (0: the recipe's)")
    parser.add_argument("--table", nargs="+", metavar="DIR[:HW.json]",
                        help="print the summary rows of these finished runs, train nothing")
    args = parser.parse_args(argv)
    if args.table:
        print("| epochs | `--mask` | `--pattern` | `--ift` | k-WTA k | held-out engine "
              "| in distribution "
              "| 0-5 dB | 5-25 dB | 25-45 dB + clean | golden vs float | useful MACs / input "
              "| interval, cycles (bottleneck) | multipliers |")
        print("|---" * 14 + "|")
        for item in args.table:
            folder, _, hw_config = item.partition(":")
            print(summary_row(Path(folder), hw_config or None), flush=True)
        return 0
    if args.data is None or args.out is None:
        parser.error("--data and --out are needed to train (or give --table)")
    names = args.runs.split(",")
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    rows = []
    for name in names:
        mask, ift = RUNS[name]
        extra = ["--seed", str(args.seed), "--mask-seed", str(args.seed)] if args.seed else []
        folder = args.out / (name if not args.seed else f"{name}-seed{args.seed}")
        report = train_and_evaluate(folder.name, ["--mask", mask, *ift, *extra],
                                    args.data, folder, args.epochs)
        rows.append(row(folder.name, report, folder))
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
