"""Alveo U250 (xcu250-figd2104-2L-e): the platform and its Vitis RTL-kernel build plan.

amaranth-boards (0.0.21) has no Alveo board. On an Alveo card the
shell owns every pin, the PCIe link, the DDR banks and the clocks, so the
platform declares the part and no resources: the accelerator goes in as a
Vitis RTL kernel (:mod:`cosparse.boards.vitis`): one or more compute
units, dealt over the four SLRs with each unit's ``m_axi_gmem`` on its
SLR's DDR bank, with ``ap_clk`` at 250 MHz (the clock every UltraScale+
figure of this project assumes) unless ``--kernel-frequency`` says
otherwise.
"""

from __future__ import annotations

from amaranth.vendor import XilinxPlatform

from .vitis import VitisTarget, write_plan

__all__ = ["AlveoU250Platform", "TARGET", "write_u250_plan"]


class AlveoU250Platform(XilinxPlatform):
    """The U250's FPGA for Amaranth; no resources (the Vitis shell owns the pins)."""

    device = "xcu250"
    package = "figd2104"
    speed = "2L-e"
    resources = []
    connectors = []


#: Vitis target: the gen3x16 XDMA shell, 250 MHz kernel clock by default; the four SLRs
#: each with its own DDR4 bank (UG1120, U250 gen3x16 XDMA 4.1 floorplan: DDR[n] in SLRn).
TARGET = VitisTarget(board="u250", part="xcu250-figd2104-2L-e",
                     platform="xilinx_u250_gen3x16_xdma_4_1_202210_1", memory="DDR[0]",
                     clock_hz=250e6, embedded=False,
                     regions=tuple((f"SLR{n}", f"DDR[{n}]") for n in range(4)))


def write_u250_plan(out, write_verilog, *, instances: int = 1, build_target: str = "hw",
                    kernel_mhz: float | None = None) -> dict:
    """Write the U250 build plan into ``out`` (see :func:`cosparse.boards.vitis.write_plan`)."""
    return write_plan(out, TARGET, write_verilog, instances=instances,
                      build_target=build_target, kernel_mhz=kernel_mhz)
