"""Random PyTorch nets, end to end through the public API and the simulated hardware.

Each net is drawn by ``random_sequential`` (random channels, kernel sizes,
strides, paddings, pools, k-WTA densities and N per group), trained a few
steps and exported with :func:`cosparse.export`; the golden model is checked
against PyTorch run with the exporter's roundings, then the hardware is
simulated with :func:`cosparse.simulate`, which compares every output with
the golden model. Icarus builds a small net in seconds where Verilator
compiles C++ for a minute, so these run on Icarus; the
Verilator path is covered by tests/sim/test_sim.py and test_sim_stride.py.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cosparse

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _sim_util import needs_icarus  # noqa: E402
from _torch_nets import (check_golden_follows_pytorch, random_sequential,  # noqa: E402
                         train_a_few_steps)

#: 20 nets: 10 with stride 1 and no padding, 10 strided or padded.
NETS = [(seed, False) for seed in range(300, 310)] + [(seed, True) for seed in range(400, 410)]


@needs_icarus
@pytest.mark.parametrize("seed, strided", NETS)
def test_random_pytorch_net_exported_and_simulated_bit_exact(seed, strided, tmp_path):
    model, shape = random_sequential(seed, strided=strided, hardware=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, (24, *shape)).astype(np.int8)
    train_a_few_steps(model, torch.from_numpy(x.astype(np.float32) / 127), seed=seed)
    spec = cosparse.export(model, x, input_scale=1 / 127, name=f"torch{seed}")
    check_golden_follows_pytorch(model, spec, x, 1 / 127,
                                 rng.integers(0, 128, (100, *shape)).astype(np.int8))
    report = cosparse.simulate(spec, x[:4], simulator="icarus", stress=2, seed=seed,
                               progress=False, cache=tmp_path)
    summary = report["summary"]
    assert summary["all_bit_exact"], report["mismatches"]
    assert [p["index"] for p in report["inputs"]] == list(range(4))
