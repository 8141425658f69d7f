"""Vitis RTL-kernel build plans: the kernel's Verilog, its packaging script, link config, run.sh.

An Alveo card (and a Zynq UltraScale+ board running a Vitis platform) hosts
accelerators as *kernels* inside a shell that owns the pins, PCIe/DDR and
clocks. An RTL kernel is a Verilog top with fixed port names (``ap_clk``,
``ap_rst_n``, an ``s_axi_control`` AXI4-Lite subordinate with the
``ap_ctrl_hs`` registers, ``m_axi_<bundle>`` AXI4 managers) packaged by
Vivado as an IP (``ipx::package_project``) and then as a Xilinx object
(``package_xo`` with a ``kernel.xml`` naming its arguments), which ``v++
--link`` places in the platform, connected as the link config says.

:func:`write_plan` writes that whole plan into a folder; nothing in it runs
here (Vivado and Vitis are not available to this project), but ``run.sh``
runs it where they are and stops with a clear error naming the missing
tool where they are not. The kernel's interface (names, widths, register
offsets) comes from :mod:`cosparse.hw.kernel.regmap` and the constants
below, and the Verilog from a caller's function, so the plan packages
whichever top it is given as long as it has those ports.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..hw.kernel import regmap

__all__ = ["KERNEL", "CLOCK", "RESET", "CONTROL", "MEMORY", "INTERRUPT", "VitisTarget",
           "kernel_xml", "package_tcl", "link_config", "run_script", "write_plan"]

#: The kernel's module name, and its port names as a Vitis shell expects them.
KERNEL = "cosparse_kernel"
CLOCK, RESET = "ap_clk", "ap_rst_n"
CONTROL, MEMORY, INTERRUPT = "s_axi_control", "m_axi_gmem", "interrupt"
#: Compute-unit instance name in the link config.
INSTANCE = f"{KERNEL}_1"
#: IP identity of the packaged kernel (vendor:library:name:version).
VLNV = f"cosparse.org:kernel:{KERNEL}:1.0"


@dataclass(frozen=True)
class VitisTarget:
    """Where a kernel goes: part, Vitis platform, memory bank of ``m_axi_gmem``, kernel clock.

    ``embedded`` targets (Zynq) need a further ``v++ --package`` step (an
    SD-card image from the platform's root file system and Linux kernel
    image); Alveo cards load the linked ``.xclbin`` as is.
    """

    board: str
    part: str
    platform: str
    memory: str
    clock_hz: float
    embedded: bool

    def __post_init__(self):
        for name in ("board", "part", "platform", "memory"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.clock_hz, (int, float)) or not 10e6 <= self.clock_hz <= 800e6:
            raise ValueError(f"clock_hz must be from 10 MHz to 800 MHz, got {self.clock_hz!r}")


def kernel_xml() -> str:
    """``kernel.xml``: the kernel's ports and the arguments at their register offsets."""
    control_range = 1 << regmap.CONTROL_ADDRESS_BITS
    ports = (f'      <port name="{CONTROL}" mode="slave" range="0x{control_range:X}"'
             f' dataWidth="{regmap.CONTROL_DATA_BITS}" portType="addressable" base="0x0"/>\n'
             f'      <port name="{MEMORY}" mode="master" range="0xFFFFFFFFFFFFFFFF"'
             f' dataWidth="{regmap.MEMORY_DATA_BITS}" portType="addressable" base="0x0"/>\n')
    args = []
    for index, (name, offset, size, kind) in enumerate(regmap.ARGS):
        pointer = kind == "global"
        args.append(f'      <arg name="{name}" addressQualifier="{1 if pointer else 0}" '
                    f'id="{index}" port="{MEMORY if pointer else CONTROL}" size="0x{size:X}" '
                    f'offset="0x{offset:X}" type="{"void*" if pointer else "uint"}" '
                    f'hostOffset="0x0" hostSize="0x{size:X}"/>\n')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<root versionMajor="1" versionMinor="6">\n'
            f'  <kernel name="{KERNEL}" language="ip_c" vlnv="{VLNV}" attributes="" '
            'preferredWorkGroupSizeMultiple="0" workGroupSize="1" interrupt="true" '
            'hwControlProtocol="ap_ctrl_hs">\n'
            f'    <ports>\n{ports}    </ports>\n'
            f'    <args>\n{"".join(args)}    </args>\n'
            '  </kernel>\n</root>\n')


def package_tcl(target: VitisTarget) -> str:
    """``package_xo.tcl``: Vivado packages ``src/*.v`` as an IP, then as ``<kernel>.xo``.

    Run as ``vivado -mode batch -source package_xo.tcl -tclargs <xo path>``.
    Both AXI interfaces are associated with ``ap_clk`` (the shell clocks them
    with the kernel clock), ``ap_rst_n`` is marked active low, and the control
    registers (the ``ap_ctrl_hs`` block and one register per argument, each
    pointer tied to ``m_axi_gmem``) are declared on ``s_axi_control``'s
    memory map, as the RTL Kernel Wizard's scripts do.
    """
    registers = [("CTRL", regmap.CTRL, 32, None), ("GIER", regmap.GIE, 32, None),
                 ("IP_IER", regmap.IER, 32, None), ("IP_ISR", regmap.ISR, 32, None)]
    registers += [(name, offset, 8 * size, MEMORY if kind == "global" else None)
                  for name, offset, size, kind in regmap.ARGS]
    lines = []
    for name, offset, bits, bus in registers:
        lines.append(f"set reg [ipx::add_register -quiet {name} $addr_block]\n"
                     f"set_property address_offset 0x{offset:03X} $reg\n"
                     f"set_property size {bits} $reg")
        if bus is not None:
            lines.append("set regparam [ipx::add_register_parameter -quiet ASSOCIATED_BUSIF $reg]\n"
                         f"set_property value {bus} $regparam")
    register_block = "\n".join(lines)
    return f"""\
# Package the {KERNEL} RTL kernel for {target.board} ({target.part}) as a Vitis .xo.
# Generated by cosparse (cosparse build --board {target.board}); run with
#   vivado -mode batch -notrace -source package_xo.tcl -tclargs {KERNEL}.xo
set kernel   {KERNEL}
set part     {target.part}
set xo_path  [expr {{[llength $argv] > 0 ? [lindex $argv 0] : "{KERNEL}.xo"}}]
set here     [file normalize [file dirname [info script]]]

create_project -force kernel_pack $here/kernel_pack -part $part
add_files -norecurse [glob $here/src/*.v]
set_property top $kernel [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir $here/ip -vendor cosparse.org -library kernel \\
    -taxonomy /KernelIP -import_files -set_current false
ipx::unload_core $here/ip/component.xml
ipx::edit_ip_in_project -upgrade true -name kernel_edit -directory $here/ip \\
    $here/ip/component.xml
set core [ipx::current_core]
set_property core_revision 1 $core
foreach up [ipx::get_user_parameters] {{
    ipx::remove_user_parameter [get_property NAME $up] $core
}}

# Interfaces: both AXI ports run on the kernel clock; the reset is active low.
ipx::infer_bus_interface {CLOCK} xilinx.com:signal:clock_rtl:1.0 $core
ipx::infer_bus_interface {RESET} xilinx.com:signal:reset_rtl:1.0 $core
ipx::associate_bus_interfaces -busif {CONTROL} -clock {CLOCK} $core
ipx::associate_bus_interfaces -busif {MEMORY} -clock {CLOCK} $core
ipx::associate_bus_interfaces -clock {CLOCK} -reset {RESET} $core
set_property value ACTIVE_LOW [ipx::get_bus_parameters POLARITY \\
    -of_objects [ipx::get_bus_interfaces {RESET} -of_objects $core]]
ipx::infer_bus_interface {INTERRUPT} xilinx.com:signal:interrupt_rtl:1.0 $core

# Control registers on {CONTROL}: ap_ctrl_hs block, then the kernel arguments.
set mem_map [ipx::add_memory_map -quiet {CONTROL} $core]
set addr_block [ipx::add_address_block -quiet reg0 $mem_map]
set_property range 0x{1 << regmap.CONTROL_ADDRESS_BITS:X} $addr_block
{register_block}
set_property slave_memory_map_ref {CONTROL} [ipx::get_bus_interfaces {CONTROL} -of_objects $core]

set_property xpm_libraries {{XPM_CDC XPM_MEMORY XPM_FIFO}} $core
set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
set_property supported_families {{ }} $core
set_property auto_family_support_level level_2 $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity -kernel $core
ipx::save_core $core
close_project -delete

package_xo -force -xo_path $xo_path -kernel_name $kernel -ip_directory $here/ip \\
    -kernel_xml $here/kernel.xml
"""


def link_config(target: VitisTarget) -> str:
    """``link.cfg`` for ``v++ --link --config``: one compute unit, its memory bank and clock."""
    return (f"# v++ link configuration for {target.board}: one {KERNEL} compute unit.\n"
            f"platform={target.platform}\n"
            "\n[connectivity]\n"
            f"nk={KERNEL}:1:{INSTANCE}\n"
            f"sp={INSTANCE}.{MEMORY}:{target.memory}\n"
            "\n[clock]\n"
            f"freqHz={int(target.clock_hz)}:{INSTANCE}.{CLOCK}\n")


def run_script(target: VitisTarget) -> str:
    """``run.sh``: package, link (embedded targets: an SD image too), or name the missing tool."""
    package = ""
    if target.embedded:
        package = """
# Embedded platforms boot from an SD-card image: it needs the platform's Linux parts.
if [ -z "$ROOTFS" ] || [ -z "$KERNEL_IMAGE" ]; then
    echo "run.sh: linked $XCLBIN; set ROOTFS (rootfs.ext4) and KERNEL_IMAGE (Image) from the" \\
         "platform's common image to package an SD card image" >&2
    exit 0
fi
v++ --package --target hw --platform "$PLATFORM" --package.out_dir package \\
    --package.boot_mode sd --package.rootfs "$ROOTFS" --package.kernel_image "$KERNEL_IMAGE" \\
    "$XCLBIN"
"""
    return f"""\
#!/bin/sh
# Build the {KERNEL} kernel for {target.board} ({target.part}) with AMD Vivado and Vitis.
# Generated by cosparse. PLATFORM overrides the Vitis platform ({target.platform}).
set -e
cd "$(dirname "$0")"
PLATFORM="${{PLATFORM:-{target.platform}}}"
XCLBIN={KERNEL}.xclbin
for tool in vivado v++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: error: '$tool' not found on PATH; install AMD Vivado and Vitis" \\
             "(2022.1 or later) and source their settings64.sh" >&2
        exit 127
    fi
done
vivado -mode batch -notrace -source package_xo.tcl -tclargs {KERNEL}.xo
v++ --link --target hw --platform "$PLATFORM" --config link.cfg -o "$XCLBIN" {KERNEL}.xo
{package}"""


def write_plan(out, target: VitisTarget, write_verilog: Callable[[Path], Path]) -> dict:
    """Write the build plan of ``target`` into ``out``; return its manifest.

    ``write_verilog(folder)`` writes the kernel's Verilog (module
    :data:`KERNEL` with the ports above) into ``folder`` and returns its
    path; it is called with ``out/src``. The manifest (``out/plan.json``)
    lists the target and every file of the plan.
    """
    if not isinstance(target, VitisTarget):
        raise TypeError(f"target must be a VitisTarget, got {type(target).__name__}")
    if not callable(write_verilog):
        raise TypeError(f"write_verilog must be callable, got {type(write_verilog).__name__}")
    out = Path(out)
    (out / "src").mkdir(parents=True, exist_ok=True)
    verilog = Path(write_verilog(out / "src"))
    if verilog.parent.resolve() != (out / "src").resolve() or verilog.suffix != ".v":
        raise ValueError(f"write_verilog must write a .v file into {out / 'src'}, wrote {verilog}")
    files = {"kernel.xml": kernel_xml(), "package_xo.tcl": package_tcl(target),
             "link.cfg": link_config(target), "run.sh": run_script(target)}
    for name, text in files.items():
        (out / name).write_text(text)
    run = out / "run.sh"
    run.chmod(run.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    manifest = {"board": target.board, "part": target.part, "platform": target.platform,
                "memory": target.memory, "clock_hz": target.clock_hz, "kernel": KERNEL,
                "files": sorted([f"src/{verilog.name}", *files])}
    (out / "plan.json").write_text(json.dumps(manifest, indent=1))
    return manifest
