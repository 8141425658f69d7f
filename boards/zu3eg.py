"""Zynq UltraScale+ ZU3EG (Ultra96-V2, xczu3eg-sbva484-1-i): platform and Vitis build plan.

The Ultra96-V2 runs Vitis accelerators as on an Alveo card, but embedded:
the kernel's ``m_axi_gmem`` reaches the processing system's DDR through an
HP port (``HP0``) and the image boots from an SD card, so the plan's
``run.sh`` adds a ``v++ --package`` step. The Vitis platform named here is
Avnet's Ultra96-V2 base platform; ``PLATFORM=...`` overrides it. Only the
part is declared to Amaranth: the platform, not the kernel, owns the pins.
"""

from __future__ import annotations

from amaranth.vendor import XilinxPlatform

from .vitis import VitisTarget, write_plan

__all__ = ["ZU3EGPlatform", "TARGET", "write_zu3eg_plan"]


class ZU3EGPlatform(XilinxPlatform):
    """The ZU3EG of an Ultra96-V2 for Amaranth; no resources (the Vitis platform owns the pins)."""

    device = "xczu3eg"
    package = "sbva484"
    speed = "1-i"
    resources = []
    connectors = []


#: Vitis target: Avnet's Ultra96-V2 base platform, the PS DDR through HP0, 250 MHz.
TARGET = VitisTarget(board="zu3eg", part="xczu3eg-sbva484-1-i", platform="u96v2_sbc_base",
                     memory="HP0", clock_hz=250e6, embedded=True)


def write_zu3eg_plan(out, write_verilog) -> dict:
    """Write the ZU3EG build plan into ``out`` (see :func:`cosparse.boards.vitis.write_plan`)."""
    return write_plan(out, TARGET, write_verilog)
