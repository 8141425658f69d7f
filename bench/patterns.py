"""Structured complementary patterns (random, N:M, block) at one training budget.

For each run (a ``--mask`` method and a ``--pattern``): ``cosparse train``
with docs/sparsity.md's recipe (the same epochs for every run), ``cosparse
export`` of its ``best.pt``, ``cosparse evaluate --json`` on the testing
split and the golden model's mean useful MACs per input; then one markdown
row per run, as bench/masks.py. Runs already done (an ``eval.json`` in their
folder) are not redone.

    python bench/patterns.py --data DATA --out runs/patterns --epochs 10 [--runs gmp-block,...] \
        [--seed S] [--features band-mean|band-floor]

``--seed S`` trains with ``--seed S --mask-seed S``; ``--features`` the feature
normalisation (docs/data.md), recorded in each run's NetSpec.
"""
import argparse
import sys
from pathlib import Path

from masks import row, train_and_evaluate

NM = "conv1=nm:1:4,conv2=nm:1:8,fc1=nm:1:20,fc2=nm:1:4"
"""N:M for the default network's packing (n = 4, 8, 20, 4): each kernel owns 1 of every n slots."""
BLOCK = "block:4"
"""Blocks of 4 (inputs of a linear layer, input channels at one offset of a convolution)."""
RUNS = {f"{mask}-{name}": (mask, pattern) for mask in ("static", "gmp")
        for name, pattern in (("random", "random"), ("nm", NM), ("block", BLOCK))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default="none", help="none, band-mean or band-floor")
    args = parser.parse_args(argv)
    names = args.runs.split(",")
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    rows = []
    for name in names:
        mask, pattern = RUNS[name]
        extra = ["--seed", str(args.seed), "--mask-seed", str(args.seed)] if args.seed else []
        if args.features != "none":
            extra += ["--features", args.features]
        report = train_and_evaluate(name, ["--mask", mask, "--pattern", pattern, *extra],
                                    args.data, args.out / name, args.epochs)
        rows.append(row(name, report, args.out / name))
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
