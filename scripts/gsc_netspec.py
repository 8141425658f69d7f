"""Write a GSC-sized NetSpec (an untrained GSCNet, default NetConfig) for hardware measurements.

The weights are random, but the shapes, packing factors and k of every
layer are the shipped model's, so the generator's time, resources and cycle
model are measured on the real network size without a trained checkpoint.

    python scripts/gsc_netspec.py /tmp/gsc-netspec
"""

import sys

import numpy as np
import torch

from cosparse.sw.export.export import export_model
from cosparse.sw.model.gsc_net import GSCNet, NetConfig


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    model = GSCNet(NetConfig()).eval()
    rng = np.random.default_rng(0)
    # Log-mel-like int8 features in [0, 127]: calibration only sets activation scales.
    calibration = rng.integers(0, 128, (64, *model.config.in_shape)).astype(np.int8)
    spec, _ = export_model(model, calibration, out_dir, name="gsc-untrained")
    print(out_dir, [(layer.name, layer.kind) for layer in spec.layers])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gsc-netspec")
