"""ULX3S (Lattice ECP5 LFE5U-85F): a NetSpec's accelerator to a bitstream with the open toolchain.

The board top is :class:`cosparse.boards.rom_demo.RomDemo` (inputs from a
ROM, the predicted class and a bit-exactness check on the LEDs) on
amaranth-boards' ``ULX3S_85F_Platform`` (25 MHz clock); :func:`cosparse.boards.ecp5.build`
runs Yosys, nextpnr-ecp5 and ecppack and reports nextpnr's Fmax and
utilisation. Only small networks fit: the ECP5-85F has 156 18x18
multipliers, 208 DP16KD (18 Kb) block RAMs (3.7 Mb) and 83,640 LUT4s,
while the default GSC design has 614 multipliers, 1.8 Mb of weight memory
and 2.4 Mb of accumulators (docs/boards.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..sw.netspec import NetSpec, random_inputs
from .rom_demo import RomDemo

__all__ = ["BOARD", "TOP_NAME", "platform", "build_ulx3s"]

#: Board name used by ``cosparse build --board``.
BOARD = "ulx3s"
#: Name of the board top's module and of the build products (``<name>.bit``...).
TOP_NAME = "cosparse_ulx3s"


def platform():
    """amaranth-boards' ULX3S 85F platform."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


def build_ulx3s(spec: NetSpec, out, *, inputs=None, bitstream: bool = True, log=None,
                hold_bits: int = 24, config=None) -> dict:
    """Build :class:`RomDemo` of ``spec`` for the ULX3S into ``out``; return the report.

    ``inputs`` (int8 ``[N, *shape]``) default to 8 random inputs of the
    NetSpec's range; ``config`` is the network's HwConfig (default:
    balanced). The report (``out/report.json``) holds the step times,
    nextpnr's Fmax against the board's 25 MHz clock, the utilisation, and
    the predictions the LEDs should show, in order.
    """
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    x = random_inputs(spec, 8, seed=0) if inputs is None else inputs
    top = RomDemo(spec, x, hold_bits=hold_bits, config=config)
    from .ecp5 import build
    report = build(platform().prepare(top, name=TOP_NAME), TOP_NAME, Path(out), log=log,
                   bitstream=bitstream)
    report.update(board=BOARD, part="LFE5U-85F-6BG381C", netspec=spec.name,
                  inputs=len(x), expected_classes=[int(p) for p in top.predictions])
    (Path(out) / "report.json").write_text(json.dumps(report, indent=1))
    return report
