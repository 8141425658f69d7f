"""What nextpnr's log says that its ``--report`` JSON does not: how far it got, and where
the critical path's nets come from.

nextpnr's JSON report (read by :func:`cosparse.boards.timing.parse_report`)
exists only once routing has finished, and its critical paths name cells
and nets of the flattened netlist, such as
``dut.i__payload.values_TRELLIS_FF_Q_371``: Amaranth names may themselves
contain dots, so the hierarchy cannot be read back from them. The log has
two things more:

- the phase the tool reached (packing, placement, routing) and, once
  placement is done, its timing estimate (``Max frequency for clock ...``
  before routing), which is all there is when a run is stopped on a time
  limit in routing;
- for every net of a critical path, the ``Defined in:`` lines: the Python
  source line of the Amaranth signal behind the net (the ``src`` attribute
  Amaranth writes and Yosys keeps), which names the unit and the statement
  to pipeline.

:func:`parse_log` reads both from the text of a log.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["parse_log", "PHASES"]

#: nextpnr's phases in the order it runs them, each with the log line that starts it.
PHASES = (
    ("pack", re.compile(r"^Info: Packing ")),
    ("place", re.compile(r"^Info: (Creating initial analytic placement|Running main analytical "
                         r"placer|Running simulated annealing placer|Running Static placer)")),
    ("route", re.compile(r"^Info: (Routing globals|Routing\.\.|Running router2)")),
    ("done", re.compile(r"^Info: Program finished normally")),
)

_FMAX = re.compile(r"^Info: Max frequency for clock +'([^']+)': ([\d.]+) MHz "
                   r"\((PASS|FAIL) at ([\d.]+) MHz\)")
_PATH_START = re.compile(r"^Info: Critical path report for (.*):\s*$")
_SEGMENT = re.compile(r"^Info:\s+([\w-]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(Source|Net|Sink)\s+(\S+)")
_SINK = re.compile(r"^Info:\s+Sink\s+(\S+)")
_DEFINED = re.compile(r"^Info:\s+Defined in:\s*$")
_LOCATION = re.compile(r"^Info:\s+(\S+:\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?)\s*$")
_TOTALS = re.compile(r"^Info: ([\d.]+) ns logic, ([\d.]+) ns routing")


def _phase(line: str):
    for name, pattern in PHASES:
        if pattern.match(line):
            return name
    return None


def _file_of(location: str) -> str:
    """``/x/hw/sparsify.py:120.5-120.30`` -> ``/x/hw/sparsify.py``."""
    return location.rsplit(":", 1)[0]


def _finish(path: dict) -> dict:
    """Add the path's source summary: its nets' source lines in order and the count per file."""
    locations = [loc for seg in path["segments"] for loc in seg.get("sources", ())]
    path["sources"] = list(dict.fromkeys(locations))
    path["files"] = dict(Counter(_file_of(loc) for loc in locations).most_common())
    return path


def parse_log(text: str) -> dict:
    """Phase reached, Fmax after placement and after routing, and critical paths of a log.

    Returns ``phase`` (the last of :data:`PHASES` the log reached, None
    before packing), ``placed_fmax_mhz`` and ``routed_fmax_mhz`` ({clock:
    MHz} from the ``Max frequency`` lines before and after ``Routing..``;
    empty where the log has none), and ``critical_paths``: one per
    ``Critical path report`` section, with ``title`` (its clocks as nextpnr
    writes them), ``segments`` ({``type``, ``delay_ns``, ``total_ns``,
    ``name`` (cell.port of a Source or Sink; the net of a routing segment),
    ``sink`` (a net's sink, cell.port), ``sources`` (the net's ``Defined
    in`` lines)}), ``logic_ns`` / ``routing_ns`` (nextpnr's totals),
    ``sources`` (the distinct source lines in path order) and ``files``
    ({file: nets defined there}, most first).
    """
    phase = None
    fmax = {"placed": {}, "routed": {}}
    paths, path, segment, in_defined = [], None, None, False
    for line in text.splitlines():
        phase = _phase(line) or phase
        match = _FMAX.match(line)
        if match:
            fmax["routed" if phase in ("route", "done") else "placed"][match.group(1)] = \
                float(match.group(2))
            continue
        match = _PATH_START.match(line)
        if match:
            path = {"title": match.group(1), "segments": [], "logic_ns": None,
                    "routing_ns": None}
            paths.append(path)
            segment, in_defined = None, False
            continue
        if path is None:
            continue
        match = _TOTALS.match(line)
        if match:
            path["logic_ns"], path["routing_ns"] = float(match.group(1)), float(match.group(2))
            _finish(path)
            path, segment, in_defined = None, None, False
            continue
        match = _SEGMENT.match(line)
        if match:
            kind, delay, total, _, name = match.groups()
            segment = {"type": kind, "delay_ns": float(delay), "total_ns": float(total),
                       "name": name, "sources": []}
            path["segments"].append(segment)
            in_defined = False
            continue
        if segment is None:
            continue
        match = _SINK.match(line)
        if match:
            segment["sink"] = match.group(1)
            continue
        if _DEFINED.match(line):
            in_defined = True
            continue
        match = _LOCATION.match(line)
        if in_defined and match:
            segment["sources"].append(match.group(1))
            continue
        in_defined = False
    for unfinished in paths:
        if "sources" not in unfinished:
            _finish(unfinished)
    return {"phase": phase, "placed_fmax_mhz": fmax["placed"],
            "routed_fmax_mhz": fmax["routed"], "critical_paths": paths}
