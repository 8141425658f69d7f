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

__all__ = ["KERNEL", "CLOCK", "RESET", "CONTROL", "MEMORY", "INTERRUPT", "BUILD_TARGETS",
           "MAX_INSTANCES", "VitisTarget", "instance_name", "placement", "kernel_xml",
           "package_tcl", "link_config", "run_script", "write_sources", "write_plan"]

#: The kernel's module name, and its port names as a Vitis shell expects them.
KERNEL = "cosparse_kernel"
CLOCK, RESET = "ap_clk", "ap_rst_n"
CONTROL, MEMORY, INTERRUPT = "s_axi_control", "m_axi_gmem", "interrupt"
#: ``v++ --target`` values a plan can be built for: hardware, or hardware emulation.
BUILD_TARGETS = ("hw", "hw_emu")
#: Most compute units a plan links (far beyond what any supported part holds).
MAX_INSTANCES = 64
#: IP identity of the packaged kernel (vendor:library:name:version).
VLNV = f"cosparse.org:kernel:{KERNEL}:1.0"


@dataclass(frozen=True)
class VitisTarget:
    """Where a kernel goes: part, Vitis platform, memory bank of ``m_axi_gmem``, kernel clock.

    ``embedded`` targets (Zynq) need a further ``v++ --package`` step (an
    SD-card image from the platform's root file system and Linux kernel
    image) and take their kernel clock from a fixed platform clock
    (``[clock] freqHz``); Alveo cards load the linked ``.xclbin`` as is and
    have a scalable kernel clock, set with ``v++ --kernel_frequency``.
    ``regions`` lists the chip's super logic regions with the memory bank
    local to each, ``(("SLR0", "DDR[0]"), ...)``: compute units are spread
    over them in turn (:func:`placement`); empty, every unit goes on
    ``memory`` and the linker places it.
    """

    board: str
    part: str
    platform: str
    memory: str
    clock_hz: float
    embedded: bool
    regions: tuple = ()

    def __post_init__(self):
        for name in ("board", "part", "platform", "memory"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.clock_hz, (int, float)) or not 10e6 <= self.clock_hz <= 800e6:
            raise ValueError(f"clock_hz must be from 10 MHz to 800 MHz, got {self.clock_hz!r}")
        if not isinstance(self.regions, tuple) or not all(
                isinstance(r, tuple) and len(r) == 2 and all(isinstance(x, str) and x for x in r)
                for r in self.regions):
            raise ValueError(f"regions must be a tuple of (SLR, memory bank) name pairs, got "
                             f"{self.regions!r}")


def instance_name(index: int) -> str:
    """Compute unit ``index`` (from 1) as linked: ``cosparse_kernel_<index>``."""
    return f"{KERNEL}_{index}"


def _check_instances(instances):
    if not isinstance(instances, int) or isinstance(instances, bool) or not (
            1 <= instances <= MAX_INSTANCES):
        raise ValueError(f"instances must be an integer from 1 to {MAX_INSTANCES}, "
                         f"got {instances!r}")


def placement(target: VitisTarget, instances: int = 1) -> list:
    """``[(unit name, SLR or None, memory bank)]``: units dealt to the regions in turn.

    Each unit's ``m_axi_gmem`` goes to the bank of its own SLR, so no memory
    traffic crosses an SLR boundary; with N units over R regions, each region
    holds N / R (rounded) of them.
    """
    _check_instances(instances)
    regions = target.regions or ((None, target.memory),)
    return [(instance_name(i + 1), *regions[i % len(regions)]) for i in range(instances)]


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


def link_config(target: VitisTarget, instances: int = 1) -> str:
    """``link.cfg`` for ``v++ --link --config``: the compute units, their SLRs and memory banks.

    Alveo targets get their kernel clock from ``--kernel_frequency`` on the
    command line (run.sh); embedded ones from a ``[clock]`` section naming
    the platform clock for every unit's ``ap_clk``.
    """
    units = placement(target, instances)
    lines = [f"# v++ link configuration for {target.board}: {instances} {KERNEL} compute "
             f"unit(s).", f"platform={target.platform}", "", "[connectivity]",
             f"nk={KERNEL}:{instances}:{'.'.join(name for name, _, _ in units)}"]
    lines += [f"slr={name}:{slr}" for name, slr, _ in units if slr is not None]
    lines += [f"sp={name}.{MEMORY}:{bank}" for name, _, bank in units]
    if target.embedded:
        lines += ["", "[clock]"]
        lines += [f"freqHz={int(target.clock_hz)}:{name}.{CLOCK}" for name, _, _ in units]
    return "\n".join(lines) + "\n"


def run_script(target: VitisTarget, *, build_target: str = "hw",
               kernel_mhz: float | None = None) -> str:
    """``run.sh``: package, link (``--save-temps -R2``), extract the reports, or name a missing tool.

    ``TARGET`` (``hw`` or ``hw_emu``), ``KERNEL_MHZ`` (Alveo) and
    ``PLATFORM`` in the environment override the plan's choices. Hardware
    emulation also writes ``emconfig.json`` (``emconfigutil``), which XRT
    looks for next to the host program when ``XCL_EMULATION_MODE=hw_emu``.
    """
    if build_target not in BUILD_TARGETS:
        raise ValueError(f"build_target must be one of {', '.join(BUILD_TARGETS)}, "
                         f"got {build_target!r}")
    mhz = target.clock_hz / 1e6 if kernel_mhz is None else kernel_mhz
    if target.embedded:
        frequency = ""
    else:
        frequency = ' --kernel_frequency "$KERNEL_MHZ"'
    package = ""
    if target.embedded:
        package = """
# Embedded platforms boot from an SD-card image: it needs the platform's Linux parts.
if [ -z "$ROOTFS" ] || [ -z "$KERNEL_IMAGE" ]; then
    echo "run.sh: linked $XCLBIN; set ROOTFS (rootfs.ext4) and KERNEL_IMAGE (Image) from the" \\
         "platform's common image to package an SD card image" >&2
    exit 0
fi
v++ --package --target "$TARGET" --platform "$PLATFORM" --package.out_dir package \\
    --package.boot_mode sd --package.rootfs "$ROOTFS" --package.kernel_image "$KERNEL_IMAGE" \\
    "$XCLBIN"
"""
    return f"""\
#!/bin/sh
# Build the {KERNEL} kernel for {target.board} ({target.part}) with AMD Vivado and Vitis.
# Generated by cosparse. Environment overrides: PLATFORM ({target.platform}),
# TARGET (hw or hw_emu; {build_target}){"" if target.embedded else f", KERNEL_MHZ ({mhz:g})"}, PYTHON (python3).
set -e
cd "$(dirname "$0")"
PLATFORM="${{PLATFORM:-{target.platform}}}"
TARGET="${{TARGET:-{build_target}}}"
KERNEL_MHZ="${{KERNEL_MHZ:-{mhz:g}}}"
case "$TARGET" in
    hw) XCLBIN={KERNEL}.xclbin ;;
    hw_emu) XCLBIN={KERNEL}.hw_emu.xclbin ;;
    *) echo "run.sh: error: TARGET must be hw or hw_emu, got '$TARGET'" >&2; exit 2 ;;
esac
for tool in vivado v++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: error: '$tool' not found on PATH; install AMD Vivado and Vitis" \\
             "(2022.1 or later) and source their settings64.sh" >&2
        exit 127
    fi
done
vivado -mode batch -notrace -source package_xo.tcl -tclargs {KERNEL}.xo
v++ --link --target "$TARGET" --platform "$PLATFORM" --config link.cfg{frequency} \\
    --save-temps -R2 --temp_dir _x."$TARGET" --report_dir reports."$TARGET" \\
    --log_dir logs."$TARGET" -o "$XCLBIN" {KERNEL}.xo
if [ "$TARGET" = hw_emu ]; then
    emconfigutil --platform "$PLATFORM" --nd 1
    echo "run.sh: hardware emulation: export XCL_EMULATION_MODE=hw_emu and run the host" \\
         "next to emconfig.json" >&2
fi
PYTHON="${{PYTHON:-python3}}"
if "$PYTHON" -c "import cosparse" 2>/dev/null; then
    "$PYTHON" -m cosparse.boards.vitis_reports . --target "$TARGET" --out "report.$TARGET.json"
else
    echo "run.sh: linked $XCLBIN; for utilisation and the achieved clock run" \\
         "'python -m cosparse.boards.vitis_reports $(pwd) --target $TARGET' where cosparse" \\
         "is installed" >&2
fi
{package}"""


def write_sources(out, write_verilog: Callable[[Path], Path]) -> Path:
    """Have ``write_verilog`` write the design into ``<out>/src`` and return the ``.v`` it wrote.

    Shared by every plan a vendor tool runs (the Vitis kernel, Vivado out of
    context): the scripts name ``src/<file>.v``, so a writer that puts its
    file anywhere else is refused here rather than by the tool hours later.
    """
    if not callable(write_verilog):
        raise TypeError(f"write_verilog must be callable, got {type(write_verilog).__name__}")
    out = Path(out)
    (out / "src").mkdir(parents=True, exist_ok=True)
    verilog = Path(write_verilog(out / "src"))
    if verilog.parent.resolve() != (out / "src").resolve() or verilog.suffix != ".v":
        raise ValueError(f"write_verilog must write a .v file into {out / 'src'}, wrote {verilog}")
    return verilog


def write_plan(out, target: VitisTarget, write_verilog: Callable[[Path], Path], *,
               instances: int = 1, build_target: str = "hw",
               kernel_mhz: float | None = None) -> dict:
    """Write the build plan of ``target`` into ``out``; return its manifest.

    ``write_verilog(folder)`` writes the kernel's Verilog (module
    :data:`KERNEL` with the ports above) into ``folder`` and returns its
    path; it is called with ``out/src``. ``instances`` compute units are
    linked (:func:`placement`), for ``build_target`` (``hw`` or
    ``hw_emu``), with the kernel clock ``kernel_mhz`` (default: the
    target's). The manifest (``out/plan.json``) lists the target, the units
    and every file of the plan.
    """
    if not isinstance(target, VitisTarget):
        raise TypeError(f"target must be a VitisTarget, got {type(target).__name__}")
    _check_instances(instances)
    if kernel_mhz is not None:
        if not isinstance(kernel_mhz, (int, float)) or isinstance(kernel_mhz, bool) or not (
                10 <= kernel_mhz <= 800):
            raise ValueError(f"kernel frequency must be from 10 to 800 MHz, got {kernel_mhz!r}")
        if target.embedded:
            raise ValueError(f"{target.board} takes its kernel clock from the platform; "
                             f"--kernel-frequency is for Alveo targets")
    out = Path(out)
    verilog = write_sources(out, write_verilog)
    files = {"kernel.xml": kernel_xml(), "package_xo.tcl": package_tcl(target),
             "link.cfg": link_config(target, instances),
             "run.sh": run_script(target, build_target=build_target, kernel_mhz=kernel_mhz)}
    for name, text in files.items():
        (out / name).write_text(text)
    run = out / "run.sh"
    run.chmod(run.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    mhz = target.clock_hz / 1e6 if kernel_mhz is None else float(kernel_mhz)
    manifest = {"board": target.board, "part": target.part, "platform": target.platform,
                "memory": target.memory, "clock_hz": mhz * 1e6, "kernel": KERNEL,
                "target": build_target, "instances": instances,
                "units": [{"name": name, "slr": slr, "memory": bank}
                          for name, slr, bank in placement(target, instances)],
                "files": sorted([f"src/{verilog.name}", *files])}
    (out / "plan.json").write_text(json.dumps(manifest, indent=1))
    return manifest
