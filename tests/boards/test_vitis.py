"""Vitis build plans (U250, ZU3EG): the files, their content and run.sh without Vivado."""

import configparser
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cosparse.boards import vitis
from cosparse.boards.alveo_u250 import TARGET as U250, AlveoU250Platform, write_u250_plan
from cosparse.boards.cli import kernel_writer
from cosparse.boards.zu3eg import TARGET as ZU3EG, ZU3EGPlatform, write_zu3eg_plan
from cosparse.hw.kernel import regmap
from cosparse.sw.cli import main
from cosparse.sw.netspec import random_netspec, save

SPEC = random_netspec(3, max_channels=3, max_size=6)


@pytest.fixture(scope="module")
def u250_plan(tmp_path_factory):
    out = tmp_path_factory.mktemp("u250")
    return out, write_u250_plan(out, kernel_writer(SPEC))


def link_sections(text):
    """link.cfg as configparser reads v++ config files: top-level keys, then sections."""
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read_string("[global]\n" + text)
    return parser


def test_plan_files(u250_plan):
    out, manifest = u250_plan
    assert manifest["files"] == ["kernel.xml", "link.cfg", "package_xo.tcl", "run.sh",
                                 "src/cosparse_kernel.v"]
    for name in manifest["files"]:
        assert (out / name).stat().st_size > 0
    assert os.access(out / "run.sh", os.X_OK)


def test_tcl_names_every_interface_of_the_verilog(u250_plan):
    out, _ = u250_plan
    tcl = (out / "package_xo.tcl").read_text()
    verilog = (out / "src" / "cosparse_kernel.v").read_text()
    assert "module cosparse_kernel(" in verilog
    for port in (vitis.CLOCK, vitis.RESET, vitis.INTERRUPT):
        assert f"input {port}" in verilog or f"output {port}" in verilog
        assert port in tcl
    for bus in (vitis.CONTROL, vitis.MEMORY):
        assert f"ipx::associate_bus_interfaces -busif {bus} -clock {vitis.CLOCK}" in tcl
        assert f"{bus}_awvalid" in verilog and f"{bus}_rdata" in verilog
    assert f"set part     {U250.part}" in tcl
    assert "ipx::package_project" in tcl and "package_xo -force" in tcl
    assert "-kernel_xml $here/kernel.xml" in tcl
    for name, offset, _, _ in regmap.ARGS:
        assert f"ipx::add_register -quiet {name} $addr_block]\nset_property address_offset " \
               f"0x{offset:03X}" in tcl


def test_kernel_xml_arguments_follow_the_register_map(u250_plan):
    out, _ = u250_plan
    kernel = ET.parse(out / "kernel.xml").getroot().find("kernel")
    assert kernel.get("name") == vitis.KERNEL and kernel.get("hwControlProtocol") == "ap_ctrl_hs"
    ports = {p.get("name"): p for p in kernel.find("ports")}
    assert ports[vitis.MEMORY].get("dataWidth") == str(regmap.MEMORY_DATA_BITS)
    assert ports[vitis.CONTROL].get("dataWidth") == str(regmap.CONTROL_DATA_BITS)
    args = [(a.get("name"), int(a.get("offset"), 16), int(a.get("size"), 16), a.get("port"))
            for a in kernel.find("args")]
    assert args == [(n, o, s, vitis.MEMORY if k == "global" else vitis.CONTROL)
                    for n, o, s, k in regmap.ARGS]


@pytest.mark.parametrize("target", [U250, ZU3EG], ids=["u250", "zu3eg"])
def test_link_config_is_well_formed(target):
    cfg = link_sections(vitis.link_config(target))
    assert cfg["global"]["platform"] == target.platform
    assert cfg["connectivity"]["nk"] == "cosparse_kernel:1:cosparse_kernel_1"
    assert cfg["connectivity"]["sp"] == f"cosparse_kernel_1.m_axi_gmem:{target.memory}"
    assert cfg["clock"]["freqHz"] == "250000000:cosparse_kernel_1.ap_clk"


def test_run_sh_names_the_missing_tool(u250_plan):
    out, _ = u250_plan
    result = subprocess.run(["sh", str(out / "run.sh")], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert result.returncode == 127
    assert "'vivado' not found" in result.stderr and "Vitis" in result.stderr


def test_platforms_declare_the_parts():
    for platform, target in ((AlveoU250Platform(), U250), (ZU3EGPlatform(), ZU3EG)):
        assert platform.family == "ultrascaleplus"
        assert f"{platform.device}-{platform.package}-{platform.speed}" == target.part


def test_zu3eg_plan_packages_an_sd_image(tmp_path):
    def write(folder):  # any top with the kernel's ports: the plan does not look inside
        path = Path(folder) / "cosparse_kernel.v"
        path.write_text("module cosparse_kernel(input ap_clk, input ap_rst_n);\nendmodule\n")
        return path
    manifest = write_zu3eg_plan(tmp_path, write)
    assert manifest["memory"] == "HP0"
    assert "v++ --package" in (tmp_path / "run.sh").read_text()


def test_write_plan_errors(tmp_path):
    with pytest.raises(TypeError, match="target"):
        vitis.write_plan(tmp_path, "u250", lambda folder: folder)
    with pytest.raises(TypeError, match="write_verilog"):
        vitis.write_plan(tmp_path, U250, "kernel.v")
    elsewhere = tmp_path / "kernel.v"
    elsewhere.write_text("")
    with pytest.raises(ValueError, match="src"):
        vitis.write_plan(tmp_path, U250, lambda folder: elsewhere)
    with pytest.raises(ValueError, match="clock_hz"):
        vitis.VitisTarget("b", "p", "pl", "DDR[0]", 1e9, False)


def test_cli_writes_the_plan(tmp_path, capsys):
    save(SPEC, tmp_path / "spec")
    assert main(["build", "--board", "zu3eg", "--netspec", str(tmp_path / "spec"),
                 "--out", str(tmp_path / "plan")]) == 0
    assert "zu3eg build plan" in capsys.readouterr().out
    assert (tmp_path / "plan" / "src" / "cosparse_kernel.v").exists()
