"""Sparse-IFT (Sparse Wide, Sparse Parallel) at equal packed slots, one training budget.

For each run (a ``--mask`` method and an ``--ift`` variant): ``cosparse
train`` with docs/sparsity.md's recipe, ``cosparse export`` of its
``best.pt``, ``cosparse evaluate --json`` on the testing split and the
golden model's mean useful MACs per input, as bench/patterns.py; then one
markdown row per run. ``--seed S`` trains with ``--seed S --mask-seed S``
into ``OUT/RUN-seedS``. Runs already done (an ``eval.json`` in their
folder) are not redone.

    python bench/ift.py --data DATA --out runs/ift --epochs 30 [--runs gmp-wide,...] [--seed 1]
"""
import argparse
import sys
from pathlib import Path

from masks import row, train_and_evaluate

RUNS = {f"{mask}-{ift}": (mask, ift) for mask in ("gmp", "static") for ift in ("wide", "parallel")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--seed", type=int, default=0,
                        help="--seed and --mask-seed of every run (0: the recipe's)")
    args = parser.parse_args(argv)
    names = args.runs.split(",")
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    rows = []
    for name in names:
        mask, ift = RUNS[name]
        extra = ["--seed", str(args.seed), "--mask-seed", str(args.seed)] if args.seed else []
        folder = args.out / (name if not args.seed else f"{name}-seed{args.seed}")
        report = train_and_evaluate(folder.name, ["--mask", mask, "--ift", ift, *extra],
                                    args.data, folder, args.epochs)
        rows.append(row(folder.name, report, folder))
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
