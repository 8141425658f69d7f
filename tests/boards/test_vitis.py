"""Vitis build plans (U250, ZU3EG): the files, their content and run.sh without Vivado."""

import json
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


def link_entries(text):
    """link.cfg as v++ reads config files: ``[(section, key, value)]``, keys may repeat."""
    entries, section = [], "global"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep and key and value, f"not a key=value line: {line!r}"
        entries.append((section, key, value))
    return entries


def values(entries, section, key):
    return [v for s, k, v in entries if (s, k) == (section, key)]


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
    cfg = link_entries(vitis.link_config(target))
    assert values(cfg, "global", "platform") == [target.platform]
    assert values(cfg, "connectivity", "nk") == ["cosparse_kernel:1:cosparse_kernel_1"]
    assert values(cfg, "connectivity", "sp") == [f"cosparse_kernel_1.m_axi_gmem:{target.memory}"]
    # Alveo: the scalable kernel clock is set by --kernel_frequency, not a [clock] section
    clock = values(cfg, "clock", "freqHz")
    assert clock == ([] if not target.embedded else ["250000000:cosparse_kernel_1.ap_clk"])


def test_sixteen_units_over_the_slrs_and_their_banks():
    cfg = link_entries(vitis.link_config(U250, 16))
    names = [f"cosparse_kernel_{i}" for i in range(1, 17)]
    assert values(cfg, "connectivity", "nk") == ["cosparse_kernel:16:" + ".".join(names)]
    slr = dict(v.split(":") for v in values(cfg, "connectivity", "slr"))
    sp = dict(v.split(":") for v in values(cfg, "connectivity", "sp"))
    assert sorted(slr) == sorted(names) and sorted(sp) == sorted(f"{n}.m_axi_gmem" for n in names)
    for name in names:  # each unit's memory port on the DDR bank of its own SLR
        assert sp[f"{name}.m_axi_gmem"] == f"DDR[{slr[name][-1]}]"
    assert sorted(slr.values()) == sorted(f"SLR{n}" for n in range(4) for _ in range(4))
    assert values(cfg, "clock", "freqHz") == []
    with pytest.raises(ValueError, match="instances must be an integer from 1 to 64, got 0"):
        vitis.link_config(U250, 0)


def test_run_sh_links_with_the_kernel_frequency_and_keeps_reports():
    hw = vitis.run_script(U250)
    assert '--kernel_frequency "$KERNEL_MHZ"' in hw and 'KERNEL_MHZ="${KERNEL_MHZ:-250}"' in hw
    assert "--save-temps -R2" in hw and '--report_dir reports."$TARGET"' in hw
    assert 'TARGET="${TARGET:-hw}"' in hw and "cosparse.boards.vitis_reports" in hw
    emu = vitis.run_script(U250, build_target="hw_emu", kernel_mhz=300)
    assert 'TARGET="${TARGET:-hw_emu}"' in emu and 'KERNEL_MHZ="${KERNEL_MHZ:-300}"' in emu
    assert "emconfigutil --platform" in emu and "XCL_EMULATION_MODE=hw_emu" in emu
    assert "--kernel_frequency" not in vitis.run_script(ZU3EG)
    with pytest.raises(ValueError, match="build_target must be one of hw, hw_emu"):
        vitis.run_script(U250, build_target="sw_emu")


def test_reports_give_utilisation_and_the_achieved_clock():
    from cosparse.boards import vitis_reports
    folder = Path(__file__).parent / "fixtures" / "vitis_link"
    report = vitis_reports.collect(folder)
    assert report["kernel_clock_mhz"] == 231.0  # the xclbin's DATA clock, after scaling
    assert {"name": "ulp_ucs/aclk_kernel_00", "type": "SCALABLE", "default_mhz": 300.0,
            "requested_mhz": 250.0, "achieved_mhz": 231.2} in report["system_clocks"]
    assert report["utilisation"] == {
        "lut": {"used": 812345, "available": 1728000, "percent": 47.01},
        "ff": {"used": 998877, "available": 3456000, "percent": 28.9},
        "bram_tile": {"used": 1234.5, "available": 2688, "percent": 45.93},
        "uram": {"used": 64, "available": 1280, "percent": 5.0},
        "dsp": {"used": 9824, "available": 12288, "percent": 79.95}}
    assert report["timing"] == {"wns_ns": 0.021, "tns_ns": 0.0, "whs_ns": 0.01, "met": True}
    with pytest.raises(FileNotFoundError, match="no Vitis reports.*run.sh"):
        vitis_reports.collect(folder / "reports.hw" / "link" / "imp" / "none")
    older = vitis_reports.parse_utilisation(
        "| Site Type | Used | Fixed | Available | Util% |\n| DSPs | 10 | 0 | 100 | 10.00 |\n")
    assert older == {"dsp": {"used": 10, "available": 100, "percent": 10.0}}  # no Prohibited


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


def test_cli_u250_instances_target_and_clock(tmp_path, capsys):
    save(SPEC, tmp_path / "spec")
    out = tmp_path / "plan"
    assert main(["build", "--board", "u250", "--netspec", str(tmp_path / "spec"), "--out",
                 str(out), "--instances", "16", "--target", "hw_emu",
                 "--kernel-frequency", "300", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["instances"] == 16 and manifest["target"] == "hw_emu"
    assert manifest["clock_hz"] == 300e6 and len(manifest["units"]) == 16
    assert manifest["units"][5] == {"name": "cosparse_kernel_6", "slr": "SLR1",
                                    "memory": "DDR[1]"}
    assert len(values(link_entries((out / "link.cfg").read_text()), "connectivity", "sp")) == 16
    assert 'KERNEL_MHZ="${KERNEL_MHZ:-300}"' in (out / "run.sh").read_text()
    code = main(["build", "--board", "zu3eg", "--netspec", str(tmp_path / "spec"), "--out",
                 str(tmp_path / "z"), "--instances", "2"])
    assert code == 2 and "are u250 options" in capsys.readouterr().err


def test_cli_writes_the_plan(tmp_path, capsys):
    save(SPEC, tmp_path / "spec")
    assert main(["build", "--board", "zu3eg", "--netspec", str(tmp_path / "spec"),
                 "--out", str(tmp_path / "plan")]) == 0
    assert "zu3eg build plan" in capsys.readouterr().out
    assert (tmp_path / "plan" / "src" / "cosparse_kernel.v").exists()
