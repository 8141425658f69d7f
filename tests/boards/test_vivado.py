"""Vivado out of context: the plan's Tcl, XDC and run.sh, and the parsers on saved reports.

The reports in vivado_reports/ follow the text layout of Vivado 2023.2's
report_utilization (UltraScale+ with SLRs), report_timing_summary and
report_design_analysis -logic_level_distribution; the numbers are those of
a made-up run (a violated 250 MHz constraint) so that every field is
distinct and checked.
"""

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cosparse.boards.vivado import (VivadoReportError, clock_xdc, parse_logic_levels,
                                    parse_timing_summary, parse_utilization, vivado_report,
                                    write_ooc_plan)
from cosparse.sw.cli import main

REPORTS = Path(__file__).parent / "vivado_reports"
UTILIZATION = (REPORTS / "utilization.rpt").read_text()
TIMING = (REPORTS / "timing_summary.rpt").read_text()
ANALYSIS = (REPORTS / "design_analysis.rpt").read_text()


def fake_verilog(folder):
    path = Path(folder) / "cosparse_top.v"
    path.write_text("module cosparse_top(input clk, input rst, output reg q);\n"
                    "  always @(posedge clk) q <= ~q;\nendmodule\n")
    return path


def test_plan_files(tmp_path):
    plan = write_ooc_plan(tmp_path, fake_verilog, top="cosparse_top",
                          part="xcu250-figd2104-2L-e", clock_mhz=250)
    assert plan["files"] == ["clock.xdc", "ooc.tcl", "run.sh", "src/cosparse_top.v"]
    assert json.loads((tmp_path / "plan.json").read_text()) == plan
    tcl = (tmp_path / "ooc.tcl").read_text()
    assert "read_verilog [glob $here/src/*.v]" in tcl and "read_xdc $here/clock.xdc" in tcl
    assert ("synth_design -mode out_of_context -part xcu250-figd2104-2L-e -top cosparse_top"
            in tcl)
    steps = ["synth_design", "opt_design", "place_design", "route_design",
             "report_utilization -file $reports/utilization.rpt",
             "report_timing_summary -max_paths 10 -file $reports/timing_summary.rpt",
             "report_design_analysis -logic_level_distribution -file "
             "$reports/design_analysis.rpt"]
    positions = [tcl.index(step) for step in steps]
    assert positions == sorted(positions)
    xdc = (tmp_path / "clock.xdc").read_text()
    assert "create_clock -period 4.000 -name clk [get_ports clk]" in xdc
    assert "HD.CLK_SRC" in xdc
    assert "create_clock -period 3.333 " in clock_xdc(300)
    run = (tmp_path / "run.sh").read_text()
    assert "vivado -mode batch" in run and "-source ooc.tcl" in run
    assert os.access(tmp_path / "run.sh", os.X_OK)


def test_plan_errors(tmp_path):
    with pytest.raises(ValueError, match="clock_mhz"):
        write_ooc_plan(tmp_path, fake_verilog, top="t", part="p", clock_mhz=5)
    with pytest.raises(ValueError, match="top"):
        write_ooc_plan(tmp_path, fake_verilog, top="a b", part="p")
    with pytest.raises(TypeError, match="write_verilog"):
        write_ooc_plan(tmp_path, "x.v", top="t", part="p")
    with pytest.raises(ValueError, match="write a .v file"):
        write_ooc_plan(tmp_path, lambda folder: tmp_path / "elsewhere.v", top="t", part="p")


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_run_sh_names_missing_vivado(tmp_path):
    write_ooc_plan(tmp_path, fake_verilog, top="cosparse_top", part="xcu250-figd2104-2L-e")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("dirname", "mkdir"):  # what run.sh needs before it looks for vivado
        (bare / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([shutil.which("sh"), str(tmp_path / "run.sh")], capture_output=True,
                            text=True, env={"PATH": str(bare)})
    assert result.returncode == 127
    assert "'vivado' not found on PATH" in result.stderr


def test_parse_utilization():
    assert parse_utilization(UTILIZATION) == {"lut": 171804, "lutram": 21691, "ff": 64312,
                                              "dsp": 614, "bram36": 48.5, "uram": 8}


def test_parse_timing_summary():
    timing = parse_timing_summary(TIMING)
    assert timing == {
        "wns_ns": -1.234, "tns_ns": -812.345, "setup_failing_endpoints": 1532,
        "setup_endpoints": 98765, "whs_ns": 0.010, "ths_ns": 0.0, "clocks": {"clk": 4.0},
        "critical_path": {"from": "sparse_conv1/emit_mask_reg[3]/C",
                          "to": "sparse_conv1/rank_now_reg[2]/CE", "data_path_ns": 5.082,
                          "logic_levels": 14}}


def test_parse_timing_summary_met_and_unconstrained():
    met = TIMING.replace("     -1.234     -812.345                   1532",
                         "      0.217        0.000                      0")
    timing = parse_timing_summary(met)
    assert timing["wns_ns"] == 0.217 and timing["setup_failing_endpoints"] == 0
    unconstrained = TIMING.replace("     -1.234     -812.345", "        inf        0.000")
    assert math.isinf(parse_timing_summary(unconstrained)["wns_ns"])


def test_parse_logic_levels():
    levels = parse_logic_levels(ANALYSIS)
    assert list(levels) == ["clk"]
    assert levels["clk"][0] == 191 and levels["clk"][14] == 12 and levels["clk"][16] == 6
    assert 13 not in levels["clk"] and sum(levels["clk"].values()) == 1000


@pytest.mark.parametrize("text, parser, message", [
    ("", parse_utilization, "CLB Logic"),
    (UTILIZATION.replace("| URAM ", "| XRAM "), parse_utilization, "'URAM' row"),
    (UTILIZATION.replace("4. ARITHMETIC", "4. MATHS"), parse_utilization, "ARITHMETIC"),
    (UTILIZATION.replace("|  614 |     0 |          0 |     12288",
                         "|  n/a |     0 |          0 |     12288"), parse_utilization,
     "not a number"),
    ("", parse_timing_summary, "Design Timing Summary"),
    (TIMING.replace("    WNS(ns)      TNS(ns)  TNS Failing", "    XNS(ns)      TNS(ns)  TNS"),
     parse_timing_summary, "WNS"),
    (TIMING.replace("1532                98765        0.010", "1532                98765"),
     parse_timing_summary, "values for 12 columns"),
    (ANALYSIS.replace("Logic Level Distribution\n---", "Something Else\n---"),
     parse_logic_levels, "Logic Level Distribution"),
    (ANALYSIS.replace("| 191 |", "| abc |"), parse_logic_levels, "unreadable"),
])
def test_parse_errors(text, parser, message):
    with pytest.raises(VivadoReportError, match=message):
        parser(text)


def run_folder(tmp_path, analysis=True):
    plan = write_ooc_plan(tmp_path, fake_verilog, top="cosparse_top",
                          part="xcu250-figd2104-2L-e", clock_mhz=250)
    (tmp_path / "reports").mkdir()
    for name in ("utilization.rpt", "timing_summary.rpt") + (
            ("design_analysis.rpt",) if analysis else ()):
        shutil.copy(REPORTS / name, tmp_path / "reports" / name)
    return plan


def test_vivado_report(tmp_path):
    run_folder(tmp_path)
    report = vivado_report(tmp_path)
    assert report["per_instance"] == {"lut": 171804, "lutram": 21691, "ff": 64312, "dsp": 614,
                                      "bram36": 48.5, "uram": 8, "logic_levels": 16}
    assert report["part"] == "xcu250-figd2104-2L-e" and report["top"] == "cosparse_top"
    assert report["wns_ns"] == -1.234 and report["clock_mhz"] == 250.0
    assert report["fmax_mhz"] == round(1000 / 5.234, 3) == 191.058
    assert report["timing_met"] is False
    assert report["critical_path"]["to"] == "sparse_conv1/rank_now_reg[2]/CE"


def test_vivado_report_without_design_analysis_uses_the_worst_path(tmp_path):
    run_folder(tmp_path, analysis=False)
    assert vivado_report(tmp_path)["per_instance"]["logic_levels"] == 14


def test_vivado_report_missing_report(tmp_path):
    run_folder(tmp_path)
    (tmp_path / "reports" / "timing_summary.rpt").unlink()
    with pytest.raises(VivadoReportError, match="timing_summary.rpt is missing: run .*run.sh"):
        vivado_report(tmp_path)


def test_vivado_report_unconstrained(tmp_path):
    run_folder(tmp_path)
    path = tmp_path / "reports" / "timing_summary.rpt"
    path.write_text(TIMING.replace("     -1.234     -812.345", "        inf        0.000"))
    with pytest.raises(VivadoReportError, match="WNS is inf"):
        vivado_report(tmp_path)


def test_cli_vivado_ooc_and_report(tmp_path, capsys):
    from cosparse.sw.netspec import random_netspec, save
    save(random_netspec(3, max_channels=3, max_size=6), tmp_path / "spec")
    out = tmp_path / "ooc"
    assert main(["build", "--board", "zu3eg", "--vivado-ooc", "--clock-mhz", "200",
                 "--netspec", str(tmp_path / "spec"), "--out", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["part"] == "xczu3eg-sbva484-1-i" and plan["clock_mhz"] == 200.0
    assert "module cosparse_top(" in (out / "src" / "cosparse_top.v").read_text()
    assert "create_clock -period 5.000" in (out / "clock.xdc").read_text()
    (out / "reports").mkdir()
    for name in ("utilization.rpt", "timing_summary.rpt", "design_analysis.rpt"):
        shutil.copy(REPORTS / name, out / "reports" / name)
    assert main(["vivado-report", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fmax_mhz"] == 191.058 and report["per_instance"]["dsp"] == 614
    assert main(["vivado-report", str(tmp_path)]) == 2
    assert "utilization.rpt is missing" in capsys.readouterr().err
