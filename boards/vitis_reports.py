"""Utilisation and achieved clock of a Vitis link, from the reports ``--save-temps -R2`` keeps.

``run.sh`` of a Vitis build plan (:mod:`cosparse.boards.vitis`) links with
``--save-temps -R2 --report_dir reports.<target>`` and then runs this
module over the plan folder. Three kinds of file are read, wherever they
lie below it:

- ``<xclbin>.info`` (``xclbinutil --info`` of the linked xclbin, written by
  v++): its ``Scalable Clocks`` section gives the frequency each clock of
  the xclbin is programmed to (after Vitis scaled it down for timing, if it
  had to); the ``DATA`` clock drives the compute units' ``ap_clk``. Its
  ``System Clocks`` section, where present, gives requested and achieved
  frequencies;
- ``*_full_util_routed.rpt`` (Vivado ``report_utilization`` of the routed
  design): used and available LUTs, registers, block RAM tiles, URAMs and
  DSPs (tables found by their ``Site Type`` / ``Used`` / ``Available``
  header, so the column set of any Vivado release parses);
- ``*timing_summary_routed.rpt``: WNS, TNS and WHS of the routed design.

``python -m cosparse.boards.vitis_reports DIR [--target hw] [--out JSON]``
prints (and writes) the JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["UTILISATION_ROWS", "parse_xclbin_info", "parse_utilisation", "parse_timing",
           "collect", "main"]

#: report_utilization rows reported, and their keys in the JSON.
UTILISATION_ROWS = {"CLB LUTs": "lut", "CLB Registers": "ff", "Block RAM Tile": "bram_tile",
                    "URAM": "uram", "DSPs": "dsp"}


def _sections(text: str) -> dict:
    """``{title: lines}`` of an ``xclbinutil --info`` report (a title is underlined by dashes)."""
    lines, sections, title = text.splitlines(), {}, None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and line.strip():
            title = line.strip()
            sections[title] = []
        elif title is not None and not re.fullmatch(r"[-=]{3,}", line.strip()):
            sections[title].append(line)
    return sections


def _records(lines: list) -> list:
    """Blank-line separated ``Key: value`` records of a report section."""
    records, current = [], {}
    for line in lines + [""]:
        match = re.match(r"\s*([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$", line)
        if match:
            current[match.group(1)] = match.group(2)
        elif not line.strip() and current:
            records.append(current)
            current = {}
    return records


def _mhz(value: str) -> float | None:
    match = re.match(r"\s*([0-9.]+)", value or "")
    return float(match.group(1)) if match else None


def parse_xclbin_info(text: str) -> dict:
    """Clocks of an ``xclbinutil --info`` report: the data clock and every listed clock."""
    sections = _sections(text)
    scalable = [{"name": r.get("Name"), "type": r.get("Type"),
                 "mhz": _mhz(r.get("Frequency", ""))}
                for r in _records(sections.get("Scalable Clocks", []))]
    system = [{"name": r.get("Name"), "type": r.get("Type"),
               "default_mhz": _mhz(r.get("Default Freq", "")),
               "requested_mhz": _mhz(r.get("Requested Freq", "")),
               "achieved_mhz": _mhz(r.get("Achieved Freq", ""))}
              for r in _records(sections.get("System Clocks", []))]
    data = [c["mhz"] for c in scalable if c["type"] == "DATA"]
    return {"kernel_clock_mhz": data[0] if data else None, "scalable_clocks": scalable,
            "system_clocks": system}


def _cells(line: str) -> list:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_utilisation(text: str) -> dict:
    """``{key: {"used", "available", "percent"}}`` of the rows in :data:`UTILISATION_ROWS`."""
    found, header = {}, None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if cells and cells[0] == "Site Type":
            header = {name: i for i, name in enumerate(cells)}
            continue
        if header is None or cells[0] not in UTILISATION_ROWS or UTILISATION_ROWS[
                cells[0]] in found:
            continue
        try:
            used = float(cells[header["Used"]])
            available = float(cells[header["Available"]])
        except (KeyError, ValueError, IndexError):
            continue
        found[UTILISATION_ROWS[cells[0]]] = {
            "used": int(used) if used.is_integer() else used, "available": int(available),
            "percent": round(100 * used / available, 2) if available else None}
    return found


def parse_timing(text: str) -> dict:
    """WNS, TNS and WHS (ns) of a ``report_timing_summary``, and whether timing is met."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "WNS(ns)" in line and "TNS(ns)" in line and i + 2 < len(lines):
            # columns are named by the header text above each run of dashes; names have
            # spaces ("TNS Failing Endpoints"), values do not
            spans = [m.span() for m in re.finditer(r"-+", lines[i + 1])]
            names = [line[a:b].strip() for a, b in spans]
            values = lines[i + 2].split()
            if len(values) != len(names):
                continue
            try:
                figures = {name: float(value) for name, value in zip(names, values)
                           if name in ("WNS(ns)", "TNS(ns)", "WHS(ns)")}
            except ValueError:
                continue
            wns, whs = figures.get("WNS(ns)"), figures.get("WHS(ns)")
            return {"wns_ns": wns, "tns_ns": figures.get("TNS(ns)"), "whs_ns": whs,
                    "met": wns is not None and wns >= 0 and (whs is None or whs >= 0)}
    return {}


def _first(folder: Path, patterns) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.rglob(pattern))
        if hits:
            return hits[0]
    return None


def collect(folder, *, target: str = "hw") -> dict:
    """The JSON report of a linked plan folder for ``target``; FileNotFoundError if unlinked."""
    folder = Path(folder)
    info = _first(folder, [f"*.{target}.xclbin.info"] if target != "hw" else
                  ["cosparse_kernel.xclbin.info", "*.xclbin.info"])
    reports = folder / f"reports.{target}"
    search = reports if reports.is_dir() else folder
    util = _first(search, ["*full_util_routed.rpt", "*util_routed.rpt"])
    timing = _first(search, ["*timing_summary_routed.rpt"])
    if info is None and util is None and timing is None:
        raise FileNotFoundError(f"no Vitis reports under {folder} (an .xclbin.info, "
                                f"*full_util_routed.rpt, *timing_summary_routed.rpt): run "
                                f"its run.sh with Vitis first")
    report = {"target": target, "sources": {}}
    if info is not None:
        report.update(parse_xclbin_info(info.read_text(errors="replace")))
        report["sources"]["clocks"] = str(info.relative_to(folder))
    if util is not None:
        report["utilisation"] = parse_utilisation(util.read_text(errors="replace"))
        report["sources"]["utilisation"] = str(util.relative_to(folder))
    if timing is not None:
        report["timing"] = parse_timing(timing.read_text(errors="replace"))
        report["sources"]["timing"] = str(timing.relative_to(folder))
    plan = folder / "plan.json"
    if plan.exists():
        manifest = json.loads(plan.read_text())
        report["instances"] = manifest.get("instances")
        report["requested_clock_mhz"] = manifest.get("clock_hz", 0) / 1e6 or None
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cosparse.boards.vitis_reports",
        description="Utilisation and achieved kernel clock of a linked Vitis build plan, as "
                    "JSON.")
    parser.add_argument("folder", help="the plan folder (cosparse build --board u250 --out)")
    parser.add_argument("--target", default="hw", choices=("hw", "hw_emu"))
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        report = collect(args.folder, target=args.target)
    except FileNotFoundError as error:
        print(f"vitis_reports: error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.folder, args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
