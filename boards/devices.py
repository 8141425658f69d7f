"""Resource capacities of the target FPGAs, and how many design instances fit in them.

Figures are the vendors' published totals: the Alveo U250 data sheet (DS962)
and the Zynq UltraScale+ product table (DS891). The U250's memory totals
check out against its published 54 MiB of on-chip SRAM: 2,688 x 36 Kb block
RAM + 1,280 x 288 Kb UltraRAM = 454.5 Mb = 54.2 MiB. Block RAM is counted in
36 Kb blocks (a RAMB18 is half of one).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Device", "XCU250", "XCZU3EG", "RESOURCES", "fit"]

#: Resource names shared by :class:`Device` and the synthesis results
#: (cosparse.boards.xilinx_synth.Utilisation).
RESOURCES = ("lut", "ff", "dsp", "bram36", "uram")


@dataclass(frozen=True)
class Device:
    """An FPGA part's name and its totals of each of :data:`RESOURCES`."""

    part: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    uram: int

    def __post_init__(self):
        for name in RESOURCES:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")


#: Alveo U250's FPGA (xcu250-figd2104-2L-e).
XCU250 = Device("xcu250-figd2104-2L-e", lut=1_728_000, ff=3_456_000, dsp=12_288,
                bram36=2_688, uram=1_280)
#: Zynq UltraScale+ ZU3EG (Ultra96-V2: xczu3eg-sbva484-1-i).
XCZU3EG = Device("xczu3eg-sbva484-1-i", lut=70_560, ff=141_120, dsp=360, bram36=216, uram=0)


def fit(used: dict, device: Device, fraction: float = 0.8) -> dict:
    """Instances of a design using ``used`` (counts per resource) within ``fraction`` of ``device``.

    Returns ``instances`` (the smallest per-resource quotient, at least 0),
    ``binding`` (the resource that sets it) and ``per_resource`` (each
    resource's own quotient; resources the design does not use are absent).
    A design using more of a resource than the device has fits 0 times.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    per_resource = {}
    for name in RESOURCES:
        need = used.get(name, 0)
        if need:
            per_resource[name] = int(fraction * getattr(device, name) // need)
    if not per_resource:
        raise ValueError("the design uses none of " + ", ".join(RESOURCES))
    binding = min(per_resource, key=per_resource.get)
    return {"instances": per_resource[binding], "binding": binding, "per_resource": per_resource,
            "fraction": fraction, "part": device.part}
