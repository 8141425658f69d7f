#!/usr/bin/env python3
"""Where does the int8 model part from the float one? Rounding ablations and a scale scan.

Runs the float sparse checkpoint in PyTorch (float64) on a data set split
with only some of the exporter's int8 roundings applied (weights and biases
of one layer, or the activations after one layer), and with every layer's
activation scale multiplied by a factor (a finer grid with more saturation
below 1); and, for scale, the plain float model with its conv1 weights
multiplied by ``1 + r * N(0, 1)`` for tiny ``r`` (no rounding at all), which
shows how far the float model's own top-1 moves under perturbations much
smaller than int8's; and every rounding at the exporter's precisions
(cosparse.sw.export.Precision: all int8, and the default with a 16-bit
first layer and fraction bits before the local k-WTAs). For each, prints
the accuracy and the fraction of clips whose
top-1 agrees with the plain float forward. Rounding rules are those of
cosparse.sw.export.fake_quant (all roundings on = the golden model within
the 16-bit requantisation multipliers).

    python scripts/quant_sensitivity.py --dataset data/gsc-synth \\
        [--checkpoint sw/assets/default/sparse.pt] [--split testing] [--scales 1,0.85,0.7,0.5]
        [--noise 1e-4,1e-3,4e-3]
"""
import argparse

import numpy as np
import torch

from cosparse.sw import features, inputs
from cosparse.sw.export.export import Precision, gsc_blocks, quantise_model
from cosparse.sw.export.fake_quant import (_folded, _round_half_up, apply_layer, quantised_forward,
                                           rounded_parameters)
from cosparse.sw.train import load_checkpoint, read_checkpoint


@torch.no_grad()
def forward(model, x, scales, round_weights, round_acts):
    blocks, h, in_scale = gsc_blocks(model), x, 1.0 / features.QMAX
    for i, block in enumerate(blocks):
        last = i == len(blocks) - 1
        weight, bias = _folded(block)
        if round_weights[i]:
            weight, bias = rounded_parameters(weight, bias, in_scale, last)
        h = apply_layer(block, h, weight, bias)
        if last:
            return h
        if round_acts[i]:
            h = torch.clamp(_round_half_up(h / scales[i]), -128, 127) * scales[i]
        if block.pool is not None:
            h = block.pool(h)
        h = block.activation(h)
        in_scale = scales[i]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoint", default="sw/assets/default/sparse.pt")
    parser.add_argument("--split", default="testing")
    parser.add_argument("--calibration", type=int, default=2000)
    parser.add_argument("--scales", default="1,0.85,0.7,0.5",
                        help="factors on every activation scale, comma separated")
    parser.add_argument("--noise", default="1e-4,1e-3,4e-3",
                        help="relative Gaussian noise levels on the float conv1 weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_checkpoint(args.checkpoint)
    qat = read_checkpoint(args.checkpoint).get("qat")
    if qat is not None:
        scales = qat["output_scales"]
    else:
        cal = inputs.from_dataset(args.dataset, "train", args.calibration, progress=False).x
        scales = [q.output_scale for q in quantise_model(model, cal)[:-1]]
    model = model.double()
    data = inputs.from_dataset(args.dataset, args.split, progress=False)
    x = torch.from_numpy(features.dequantise_features(data.x).astype(np.float64))

    def predict(rw, ra, sc=scales):
        return torch.cat([forward(model, x[i:i + 512], sc, rw, ra).argmax(1)
                          for i in range(0, len(x), 512)]).numpy()

    plain = predict([0] * 4, [0] * 3)
    print(f"{args.checkpoint} on {args.split} ({len(x)} clips), scales "
          + ", ".join(f"{s:.5g}" for s in scales) + ("" if qat is None else " (QAT, frozen)"))
    print(f"{'int8 rounding applied':<40} {'accuracy':>8} {'agrees with float':>18}")

    def show(label, p):
        print(f"{label:<40} {100 * (p == data.labels).mean():>7.2f}% {100 * (p == plain).mean():>17.2f}%",
              flush=True)

    show("none (plain float)", plain)
    names = ["conv1", "conv2", "fc1", "fc2"]
    for i, name in enumerate(names):
        show(f"{name} weights and bias", predict([int(j == i) for j in range(4)], [0] * 3))
    for i, name in enumerate(names[:3]):
        show(f"{name} output activations", predict([0] * 4, [int(j == i) for j in range(3)]))
    for label, precision in (("every rounding, all int8", Precision.int8()),
                             ("every rounding, default precision", Precision())):
        with torch.no_grad():
            rounded = torch.cat([quantised_forward(model, x[i:i + 512], scales, precision).argmax(1)
                                 for i in range(0, len(x), 512)]).numpy()
        show(label, rounded)
    show("all weights and biases", predict([1] * 4, [0] * 3))
    show("all activations", predict([0] * 4, [1] * 3))
    for factor in (float(f) for f in args.scales.split(",")):
        show(f"all, activation scales x {factor:g}", predict([1] * 4, [1] * 3,
                                                            [s * factor for s in scales]))
    packed = model.conv1.packed.detach().clone()
    for level in (float(r) for r in args.noise.split(",")):
        noise = torch.randn(packed.shape, generator=torch.Generator().manual_seed(0),
                            dtype=packed.dtype)
        with torch.no_grad():
            model.conv1.packed.copy_(packed * (1 + level * noise))
        show(f"none; conv1 weights x (1 + {level:g} N(0,1))", predict([0] * 4, [0] * 3))
    with torch.no_grad():
        model.conv1.packed.copy_(packed)


if __name__ == "__main__":
    main()
