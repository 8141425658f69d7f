"""The cost model (hw/cost.py) and `cosparse explore` (hw/explore.py): fast, no simulation.

Model against cycle-accurate simulation: tests/sim/test_cost_model.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw import cost
from cosparse.hw.config import HwConfig, load_hw_config
from cosparse.hw.explore import explore, input_widths, layer_options
from cosparse.hw.generate import summary
from cosparse.sw import assets
from cosparse.sw.cli import main
from cosparse.sw.netspec import random_inputs, random_netspec, save

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "resources-default.json"
needs_default = pytest.mark.skipif(not assets.DEFAULT_NETSPEC.exists(),
                                   reason="no shipped default model")


def test_budgets_named_and_custom():
    assert cost.parse_budget("u250/20").dsp == pytest.approx(12288 / 20)
    assert cost.parse_budget("U250").bram36 == pytest.approx(2688 * 0.8)
    custom = cost.parse_budget("LUT=1000,DSP=20,BRAM=4")
    assert (custom.lut, custom.dsp, custom.bram36, custom.ff) == (1000, 20, 4, float("inf"))
    assert custom.fraction({"lut": 500, "dsp": 20, "bram36": 1, "ff": 9, "uram": 0})["dsp"] == 1


@pytest.mark.parametrize("text, message", [
    ("u251", "unknown budget"), ("LUT=1000,CLB=3", "unknown resource 'clb'"),
    ("DSP=many", "DSP must be a number"), ("DSP=-1", "non-negative"), ("", "budget must be")])
def test_bad_budget_names_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        cost.parse_budget(text)


def test_block_ram_tiling():
    # the default's measured memories (bench/results/resources-default.json)
    assert cost._bram36(320, 2200) == 31       # conv2's weights: 31 RAMB36E2
    assert cost._bram36(11200, 143) == 44      # fc1's weights: 44 RAMB36 equivalents
    assert cost._bram36(140, 42, 11) == 11     # fc1's lanes, both buffers in one
    assert cost._bram36(32, 21, 200) == 0      # shallow: distributed RAM
    assert cost._bram36(1500, 30) <= 2


def test_interval_estimate_between_its_bounds():
    steady = np.array([[10.0, 10, 10, 10], [5, 5, 5, 5]])
    assert cost.interval_estimate(steady) == 10
    # two stages slow on different inputs: the lock-step bound is above the decoupled one
    alternating = np.array([[10.0, 2, 10, 2], [2, 10, 2, 10]])
    assert cost.interval_estimate(alternating) == pytest.approx((6 + 10) / 2)


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_cycles_agree_with_the_summary(seed):
    """The decoupled bound is the summary's interval (the same per-engine formulas)."""
    spec = random_netspec(seed)
    x = random_inputs(spec, 4, seed=seed)
    config = HwConfig.default_for(spec)
    got = cost.cycles(cost.profile(spec, x), config)
    want = summary(spec, config, inputs=x)
    assert got["interval_decoupled"] == pytest.approx(want["initiation_interval"])
    assert got["interval_decoupled"] <= got["interval"] <= got["interval_lockstep"]
    assert got["latency"] >= got["interval_decoupled"]


@needs_default
def test_resource_model_matches_the_default_synthesis():
    """Within 10% of yosys synth_xilinx per resource on the shipped default."""
    from cosparse.sw.netspec import load
    measured = json.loads(RESULTS.read_text())["per_instance"]
    spec = load(assets.DEFAULT_NETSPEC)
    got = cost.resources(spec, HwConfig.default_for(spec))
    for r in ("lut", "ff", "dsp", "bram36"):
        assert got[r] == pytest.approx(measured[r], rel=0.1), r


def test_layer_options_are_valid_and_vary_the_knobs():
    spec = random_netspec(4)
    default = HwConfig.default_for(spec)
    for i, base in enumerate(default.layers):
        options = layer_options(spec, i, base, default)
        assert base.lanes in {o.lanes for o in options} or len(options) > 1
        assert len({o.lanes for o in options}) == len(options) or len(options) > 1
    assert input_widths(spec, default.layers[0])[0] == 1


def test_explore_front_is_a_pareto_front():
    spec = random_netspec(5)
    result = explore(spec, cost.parse_budget("u250/20"), random_inputs(spec, 4, seed=1))
    front = result["front"]
    assert front and result["chosen"] is not None
    assert all(a.interval <= b.interval and a.binding_fraction > b.binding_fraction
               for a, b in zip(front, front[1:]))
    assert result["chosen"].interval <= result["default"].interval + 1e-9
    for cand in result["all"]:
        cand.config.validate(spec)
        assert not (cand.interval < front[0].interval - 1e-9)


def test_tight_budget_trades_interval_for_resources():
    spec = random_netspec(5)
    x = random_inputs(spec, 4, seed=1)
    loose = explore(spec, cost.parse_budget("u250/20"), x)
    fastest = loose["chosen"]
    dsp = fastest.used["dsp"]
    tight = explore(spec, cost.parse_budget(f"DSP={dsp - 1}"), x)
    if tight["chosen"] is not None:
        assert tight["chosen"].used["dsp"] <= dsp - 1
        assert tight["chosen"].interval >= fastest.interval


def test_cli_explore_writes_a_config_generate_reads(tmp_path, capsys):
    spec = random_netspec(6)
    save(spec, tmp_path / "net")
    out = tmp_path / "out"
    code = main(["explore", "--netspec", str(tmp_path / "net"), "--budget", "u250/20",
                 "--calibration", "4", "--out", str(out), "--json", "--no-progress"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"]["fits"] and report["front"]
    config = load_hw_config(out / "hw_config.json", spec)
    assert config == HwConfig.from_dict(report["chosen"]["hw_config"], spec) \
        if hasattr(HwConfig, "from_dict") else config is not None
    assert (out / "front.png").stat().st_size > 1000
    assert json.loads((out / "front.json").read_text())["candidates"] >= 1


def test_cli_explore_bad_budget_fails_at_once(tmp_path, capsys):
    assert main(["explore", "--budget", "LUT=lots", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "LUT must be a number" in err and not (tmp_path / "o").exists()
