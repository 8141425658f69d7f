"""A complementary-sparse CNN on real data: scikit-learn's handwritten digits, end to end.

The 1,797 8x8 images of ``sklearn.datasets.load_digits`` ship inside
scikit-learn (no download). A small net of the project's layers, with zero
padding so its 3x3 convolutions keep the 8x8 map and a stride-2 convolution
that halves it, is trained on a fixed 80 % split, exported with
:func:`cosparse.export`, run in the bit-exact integer golden model on the
held-out 20 %, then generated and simulated cycle-accurately through the
same API, every output checked against the golden model::

    python examples/digits.py                 # train, export, golden, generate, simulate
    python examples/digits.py --epochs 5 --simulate 16 --out out/digits

The README quotes its accuracy, interval and multipliers. tests/test_digits.py
runs a reduced version (few epochs, few samples) end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import cosparse
from cosparse.sw.model import CompSparseConv2d, CompSparseLinear, KWinners, KWinners2d

#: Held-out fraction and the seed of the split (fixed, so the accuracy is reproducible).
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits():
    """``(images [N, 1, 8, 8] float in [0, 1], labels [N])`` of scikit-learn's digits."""
    from sklearn.datasets import load_digits as sklearn_digits
    data = sklearn_digits()
    images = data.images.astype(np.float32)[:, None] / 16.0  # pixel values are 0..16
    return images, data.target.astype(np.int64)


def split(images, labels, samples: int | None = None):
    """A fixed shuffled train/test split; ``samples`` keeps only the first ones (for tests)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    if samples is not None:
        order = order[:samples]
    cut = int(round(len(order) * (1 - TEST_FRACTION)))
    train, test = order[:cut], order[cut:]
    return (images[train], labels[train]), (images[test], labels[test])


def build_model(seed: int = 0, widths: tuple = (16, 32, 64)) -> nn.Sequential:
    """The digits net: a padded 3x3 conv (8x8 kept), a stride-2 conv, two linear layers.

    conv1 1->16 (pad 1, 8x8) + BN + local k-WTA (4 of 16) -> conv2 16->32
    (stride 2, pad 1, 4x4) + BN + 2x2 max-pool (2x2) + local k-WTA (8 of 32)
    -> linear 128->64 + BN + k-WTA (16 of 64) -> linear 64->10, with the
    default ``widths`` (conv1, conv2 and fc1 outputs; the test uses half).
    Each complementary-sparse layer packs ``n`` sparse kernels per dense one.
    """
    c1, c2, f1 = widths
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("conv1", CompSparseConv2d(1, c1, 3, n=2, padding=1, seed=seed))
    model.add_module("bn1", nn.BatchNorm2d(c1, affine=False))
    model.add_module("kwta1", KWinners2d(c1, density=0.25, local=True))
    model.add_module("conv2", CompSparseConv2d(c1, c2, 3, n=4, stride=2, padding=1,
                                               seed=seed + 1))
    model.add_module("bn2", nn.BatchNorm2d(c2, affine=False))
    model.add_module("pool2", nn.MaxPool2d(2))
    model.add_module("kwta2", KWinners2d(c2, density=0.25, local=True))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", CompSparseLinear(c2 * 2 * 2, f1, n=4, seed=seed + 2))
    model.add_module("bn3", nn.BatchNorm1d(f1, affine=False))
    model.add_module("kwta3", KWinners(f1, density=0.25))
    model.add_module("head", CompSparseLinear(f1, 10, n=1, seed=seed + 3))
    return model


def train(model, images, labels, *, epochs: int, batch: int = 64, lr: float = 3e-3,
          seed: int = 0):
    """Adam on cross-entropy, shuffled mini-batches; returns the model in eval mode."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, epochs))
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(x)).split(batch):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimiser.step()
        schedule.step()
    return model.eval()


def run(*, epochs: int = 40, samples: int | None = None, simulate: int = 64,
        out: str | Path = "out/digits", seed: int = 0, widths: tuple = (16, 32, 64),
        hw_config=None, log=print) -> dict:
    """Train, export, golden-test, generate and simulate; returns the figures.

    ``samples`` limits the data set (tests); ``simulate`` is how many held-out
    inputs go through the simulated Verilog (0: none); ``widths`` are
    :func:`build_model`'s; ``hw_config`` is
    :func:`cosparse.generate`'s (default: the generator's own). The figures:
    ``float_accuracy`` (PyTorch), ``golden_accuracy`` (the integer model the
    hardware computes), ``initiation_interval`` (cycles per input, analytical),
    ``multipliers``, ``simulated`` and ``bit_exact``.
    """
    out = Path(out)
    images, labels = load_digits()
    (train_x, train_y), (test_x, test_y) = split(images, labels, samples)
    model = train(build_model(seed, widths), train_x, train_y, epochs=epochs, seed=seed)
    with torch.no_grad():
        float_accuracy = float((model(torch.from_numpy(test_x)).argmax(1).numpy()
                                == test_y).mean())

    # The accelerator takes int8 inputs: pixels 0..1 -> 0..127, scale 1/127.
    calibration, input_scale = cosparse.quantise_inputs(train_x, input_scale=1 / 127)
    test_q, _ = cosparse.quantise_inputs(test_x, input_scale=input_scale)
    spec = cosparse.export(model, calibration, input_scale=input_scale,
                           classes=[str(d) for d in range(10)], name="digits",
                           out=out / "netspec")
    result = cosparse.golden(spec, test_q, activations=False)
    golden_accuracy = float((result.predictions == test_y).mean())
    log(f"accuracy on {len(test_y)} held-out digits: float {float_accuracy:.4f}, "
        f"golden (integer) {golden_accuracy:.4f}")

    summary = cosparse.generate(spec, out / "hw", hw_config=hw_config)
    figures = {"train": len(train_y), "test": len(test_y), "epochs": epochs,
               "float_accuracy": float_accuracy, "golden_accuracy": golden_accuracy,
               "initiation_interval": summary["initiation_interval"],
               "multipliers": summary["multipliers"], "verilog": summary["verilog"],
               "simulated": 0, "bit_exact": None}
    log(f"generated {summary['verilog']}: {summary['multipliers']} multipliers, "
        f"{summary['initiation_interval']} cycles per input")
    if simulate:
        report = cosparse.simulate(spec, test_q[:simulate], hw_config=hw_config,
                                   stress=min(simulate, 8), progress=False)
        figures["simulated"] = min(simulate, len(test_q))
        figures["bit_exact"] = bool(report["summary"]["all_bit_exact"])
        log(f"simulated {figures['simulated']} held-out digits: "
            f"{'bit-exact' if figures['bit_exact'] else 'MISMATCH'} with the golden model")
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--simulate", type=int, default=64,
                        help="held-out inputs simulated in Verilog (default 64; 0: none)")
    parser.add_argument("--out", default="out/digits", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    figures = run(epochs=args.epochs, simulate=args.simulate, out=args.out, seed=args.seed)
    return 0 if figures["bit_exact"] in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
