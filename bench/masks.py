"""Learned complementary masks against the static one, at one training budget.

For each ``--mask`` method: ``cosparse train`` (the same recipe and epochs
for every method), ``cosparse export`` of its ``best.pt``, ``cosparse
evaluate --json`` on the testing split, and the golden model's mean useful
MACs per input; then one markdown row per method (the docs/sparsity.md
table). Runs already done (an ``eval.json`` in their folder) are not redone,
so the command can be stopped and started again.

    python bench/masks.py --data DATA --out runs/masks --epochs 10 [--methods static,rigl]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

METHODS = ("static", "magnitude", "gmp", "set", "rigl")
RECIPE = ["--lr", "0.05", "--lr-schedule", "cosine", "--weight-decay", "5e-4",
          "--kwta-noise", "0.25", "--silence-extra", "0.02", "--threads", "1"]
"""docs/sparsity.md step 1's best recipe (no engine-cue augmentation)."""


def _cosparse():
    """The ``cosparse`` entry point of the Python running this script (not whatever is on PATH)."""
    return str(Path(sys.executable).parent / "cosparse")


def _run(command, log):
    print("$ " + " ".join(command), flush=True)
    with open(log, "a") as fh:
        subprocess.run(command, check=True, stdout=fh, stderr=subprocess.STDOUT)


def train_and_evaluate(name, train_args, data, folder, epochs):
    """Train with ``train_args``, export ``best.pt``, evaluate; returns the evaluate report.

    The report (with the golden model's ``mean_useful_macs``) is kept as
    ``folder/eval.json``; a run that has one is not redone, so a sweep can be
    stopped and started again.
    """
    report_path = folder / "eval.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    _run([_cosparse(), "train", "--data", str(data), "--out", str(folder), "--epochs",
          str(epochs), *train_args, "--quiet", *RECIPE], log)
    _run([_cosparse(), "export", "--checkpoint", str(folder / "best.pt"), "--data", str(data),
          "--out", str(folder / "netspec"), "--name", f"gsc-{name}"], log)
    evaluated = subprocess.run(
        [_cosparse(), "evaluate", "--dataset", str(data), "--split", "testing", "--netspec",
         str(folder / "netspec"), "--checkpoint", str(folder / "best.pt"), "--json",
         "--no-progress"], check=True, capture_output=True, text=True)
    report = json.loads(evaluated.stdout)
    report["mean_useful_macs"] = useful_macs(folder / "netspec", data)
    report_path.write_text(json.dumps(report, indent=1))
    return report


def useful_macs(netspec_dir, data):
    """Mean useful MACs per input of the golden model on the testing split."""
    from cosparse.sw import golden, inputs, netspec
    spec = netspec.load(netspec_dir)
    x = inputs.from_dataset(data, "testing", progress=False,
                            normalisation=inputs.normalisation_for(spec)).x
    result = golden.run(spec, x, keep_activations=False)
    return float(sum(stats.useful_macs.mean() for stats in result.stats))


def kernel_fan_in(checkpoint):
    """``layer: (min, max)`` slots per kernel: how unbalanced the learned kernels are."""
    from cosparse.sw.model.masks import learnable_layers
    from cosparse.sw.train import load_checkpoint
    return {name: (int(f.min()), int(f.max())) for name, layer in
            learnable_layers(load_checkpoint(checkpoint))
            for f in [layer.kernel_fan_in()]}


def row(method, report, folder):
    """One docs/sparsity.md row: held-out engine, noisy, in distribution, agreement, MACs."""
    held = [e for e in report["by_engine"].values() if e["held_out"]]
    espeak = report["by_engine"]["espeak-ng"]["20-45+clean"]
    noisy = report["by_snr_range"]["5-25"]
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    best = metrics[-1]
    cell = lambda e: f"{100 * e['golden_accuracy']:.1f}% ({100 * e['float_accuracy']:.1f}%)"  # noqa: E731
    return (f"| `{method}` | {cell(held[0]['all']) if held else '-'} | {cell(noisy)} | "
            f"{cell(espeak)} | {100 * report['golden_int8_accuracy']:.1f}% | "
            f"{100 * report['golden_agrees_with_float_sparse']:.1f}% | "
            f"{report['mean_useful_macs']:,.0f} | {100 * best['best_val_acc']:.1f}% | "
            f"{sum(m['seconds'] for m in metrics) / 60:.0f} min | "
            + ", ".join(f"{lo}-{hi}" for lo, hi in kernel_fan_in(folder / "best.pt").values())
            + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    rows = []
    for method in methods:
        report = train_and_evaluate(method, ["--mask", method], args.data, args.out / method,
                                    args.epochs)
        rows.append(row(method, report, args.out / method))
        print(rows[-1], flush=True)
    print("\n| method | held-out engine | noisy 5-25 dB | espeak-ng 20-45 dB + clean | all testing "
          "| golden vs float | useful MACs / input | best validation | training time "
          "| slots per kernel, min-max (conv1, conv2, fc1, fc2) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
