"""Alveo U250 (xcu250-figd2104-2L-e): the platform and its Vitis RTL-kernel build plan.

amaranth-boards has no Alveo board (TOOLCHAIN.md). On an Alveo card the
shell owns every pin, the PCIe link, the DDR banks and the clocks, so the
platform declares the part and no resources: the accelerator goes in as a
Vitis RTL kernel (:mod:`cosparse.boards.vitis`) whose ``m_axi_gmem`` is
linked to DDR bank 0 and whose ``ap_clk`` runs at 250 MHz, the clock every
UltraScale+ figure of this project assumes.
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


#: Vitis target: the gen3x16 XDMA shell, DDR bank 0, 250 MHz kernel clock.
TARGET = VitisTarget(board="u250", part="xcu250-figd2104-2L-e",
                     platform="xilinx_u250_gen3x16_xdma_4_1_202210_1", memory="DDR[0]",
                     clock_hz=250e6, embedded=False)


def write_u250_plan(out, write_verilog) -> dict:
    """Write the U250 build plan into ``out`` (see :func:`cosparse.boards.vitis.write_plan`)."""
    return write_plan(out, TARGET, write_verilog)
