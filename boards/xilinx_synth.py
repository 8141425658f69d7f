"""UltraScale+ resource figures of one module, from Yosys's ``synth_xilinx -family xcup``.

Vivado is not available to this project, so resources come from Yosys's
Xilinx flow: one module (an engine or unit of the design, converted on its
own with its own ports to RTLIL, Yosys's own netlist language, which
Amaranth writes directly; cosparse.boards.resources) is
synthesised out of context and mapped to UltraScale+ cells without I/O or
clock buffers (a kernel is placed inside a shell, not on pins), with
UltraRAM inference for large memories (``-uram``), as Vivado would place
them on a U250. The module's own hierarchy is kept through synthesis (each
submodule, e.g. an engine's accumulators, multiplier and drain, is
optimised and mapped by ABC on its own, which is what lets the default
network's largest engine finish: ABC's time grows faster than the size of
the logic it maps) and flattened only after mapping, for the counts and the
logic levels, which so cross submodule boundaries. ``parts`` has each
submodule's own cells, the breakdown of the module.

Counts (:class:`Utilisation`):

- ``lut``: logic LUTs (LUT1-LUT6, INV) plus the LUTs that distributed RAM
  and shift registers occupy (:data:`LUTS_PER_CELL`), Vivado's "CLB LUTs";
- ``ff``: flip-flops (FDRE, FDSE, FDCE, FDPE);
- ``carry``: carry-chain cells; Yosys 0.70 maps UltraScale+ adders to CARRY4
  cells (half a CARRY8 each), recorded by type in ``cells``;
- ``dsp``: DSP48E2; ``bram36``: RAMB36E2 + RAMB18E2 / 2; ``uram``: URAM288;
- ``logic_levels``: the longest path found by Yosys's ``ltp`` (longest
  topological path, in cells) on the mapped netlist after removing every
  sequential cell (flip-flops, DSPs, block/distributed RAM, shift
  registers), so a path starts and ends at those cells' pins or at the
  module's ports and runs through LUTs, carry cells and wide-function muxes
  only; its cells are then counted as Vivado counts levels on UltraScale+,
  where one CARRY8 is one level: each run of ``r`` consecutive CARRY4 cells
  on the path counts ``ceil(r / 2)`` levels (two CARRY4 = one CARRY8), every
  other cell one. ``ltp`` picks the path with the most cells, which is not
  always the one with the most levels so counted; the figure is a depth, not
  a delay (no vendor timing report).

Results are cached under ``<cache>/synth/<hash>/`` keyed by the RTLIL text,
the top name, the script and the Yosys version, so identical modules (equal
FIFOs, a rerun) are synthesised once; a failed or stopped synthesis is never
cached. The cache follows :mod:`cosparse.sw.cache`: one module is synthesised
under the lock of its folder (a second process waits, then reuses the
result), in a scratch folder renamed into place when it succeeds, so no
reader sees half a result; a damaged ``utilisation.json`` (not JSON, a field
missing or of the wrong type) means "not synthesised".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..sw.cache import cache_root, locked, read_json, write_atomic
from .yosys import ToolFailed, find_tool, run_logged

__all__ = ["Utilisation", "SCRIPT", "LUTS_PER_CELL", "synthesise", "synthesis_key",
           "yosys_version", "parse_stat", "parse_parts", "parse_ltp", "cell_levels", "ToolFailed"]

#: The Yosys script; ``{rtlil}`` and ``{top}`` are filled in. Outputs: parts.json (each
#: submodule's own cells), stat.json (the module's, flattened after mapping), carry4.txt
#: (the module's CARRY4 cells) and ltp.txt.
SCRIPT = """\
read_rtlil {rtlil}
synth_xilinx -family xcup -top {top} -noiopad -noclkbuf -uram
tee -q -o parts.json stat -json
flatten
tee -q -o stat.json stat -json
read_verilog -lib +/xilinx/cells_sim.v
hierarchy -top {top}
delete t:FD* t:DSP* t:RAM* t:URAM* t:SRL*
tee -q -o carry4.txt select -list t:CARRY4
tee -q -o ltp.txt ltp -noff
"""

#: LUTs occupied by each distributed-RAM / shift-register cell Yosys may map to.
LUTS_PER_CELL = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
_LOGIC_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")
_FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")
_CARRY = ("CARRY4", "CARRY8")


@dataclass
class Utilisation:
    """Resources of one synthesised module (see the module docstring for each count)."""

    top: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: float
    uram: int
    logic_levels: int
    cells: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_rss_mb: float = 0.0
    cached: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def parse_stat(text: str, top: str) -> dict:
    """Resource counts from Yosys's ``stat -json`` output for module ``top``."""
    modules = json.loads(text)["modules"]
    key = next((k for k in (f"\\{top}", top) if k in modules), None)
    if key is None:
        raise ValueError(f"module {top!r} not in the synthesis statistics "
                         f"(found {sorted(modules)})")
    cells = {k: int(v) for k, v in modules[key]["num_cells_by_type"].items()
             if not k.startswith("$")}
    count = lambda names: sum(cells.get(name, 0) for name in names)  # noqa: E731
    return {
        "lut": count(_LOGIC_LUTS) + sum(n * cells.get(c, 0) for c, n in LUTS_PER_CELL.items()),
        "ff": count(_FLIP_FLOPS), "carry": count(_CARRY), "dsp": cells.get("DSP48E2", 0),
        "bram36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2,
        "uram": cells.get("URAM288", 0), "cells": cells,
    }


def parse_parts(text: str, top: str) -> dict:
    """Each submodule's own counts (cells of its submodules excluded) from the ``stat -json``
    of the hierarchical netlist, keyed by its path below ``top`` (``""``: the top's own)."""
    parts = {}
    for name in json.loads(text)["modules"]:
        path = name.lstrip("\\")
        if path != top and not path.startswith(f"{top}."):
            continue
        counts = parse_stat(text, path)
        counts.pop("cells")
        parts[path[len(top) + 1:]] = counts
    return parts


_LTP_HEAD = re.compile(r"Longest topological path in (\S+) \(length=(-?\d+)\)")
_LTP_STEP = re.compile(r"^\s*\d+: .* \(via (.*)\)\s*$")


def parse_ltp(text: str, carry4: str = "") -> int:
    """Logic levels from Yosys's ``ltp`` report, CARRY4 runs counted as CARRY8s.

    ``carry4`` is the output of ``select -list t:CARRY4`` (one
    ``module/cell`` a line). A run of ``r`` consecutive CARRY4 cells on the
    path counts ``ceil(r / 2)`` (two make one CARRY8, Vivado's level); every
    other cell counts one. 0 when the module has no combinational path.
    """
    head = _LTP_HEAD.search(text)
    if head is None:
        raise ValueError("no 'Longest topological path' line in the ltp report")
    if int(head.group(2)) <= 0:
        return 0
    module = head.group(1)
    carry = {line.strip().split("/", 1)[1] for line in carry4.splitlines()
             if line.strip().startswith(f"{module}/")}
    path = [m.group(1) for m in map(_LTP_STEP.match, text[head.end():].splitlines()) if m]
    if len(path) != int(head.group(2)):
        raise ValueError(f"the ltp report lists {len(path)} cells on a path of length "
                         f"{head.group(2)}")
    state, chained = (0, NO_LEVEL), False
    for cell in path:
        # Consecutive CARRY4 cells on a path are one chain (CO -> CI).
        if cell in carry and chained:
            state = cell_levels(True, 0, state)
        else:
            state = cell_levels(cell in carry, max(state))
        chained = cell in carry
    return max(state)


#: "No such level" in :func:`cell_levels`' pairs.
NO_LEVEL = -1


def cell_levels(carry: bool, plain: int, chained: tuple = (0, NO_LEVEL)) -> tuple:
    """Logic levels at one cell's output, a chained pair of CARRY4 cells counting as one level.

    ``plain`` is the deepest level among the cell's inputs other than a carry
    chain's; ``chained`` is what :func:`cell_levels` gave the CARRY4 driving
    this one's carry input (a CARRY4 only). Returns ``(a, b)``: the levels at
    the output when a CARRY4 chained to it would be the first of a pair (it
    pays a level) and when it would be the second (free); the cell's own
    depth is ``max(a, b)``. A LUT or mux costs one level; a CARRY4 entering a
    chain costs one and makes the next free, so ``r`` chained CARRY4s cost
    ``ceil(r / 2)``: Vivado's count on UltraScale+, where one CARRY8 (two
    CARRY4s) is one level. :func:`parse_ltp` walks one path with it,
    :func:`cosparse.hw.depth.carry_paired_levels` a whole netlist.
    """
    if not carry:
        return (plain + 1, NO_LEVEL)
    pays, free = chained
    return (free, max(plain, pays) + 1)


@functools.cache
def yosys_version() -> str:
    """The first line of ``yosys -V`` of the Yosys :func:`find_tool` picks (part of the cache key)."""
    tool = find_tool("yosys")
    done = subprocess.run([tool, "-V"], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("Yosys")]
    if done.returncode != 0 or not lines:
        raise ToolFailed(f"{tool} -V failed (exit {done.returncode}): {done.stderr.strip()}",
                         f"yosys -V: exit {done.returncode}")
    return lines[0].strip()


def synthesis_key(rtlil: str, top: str) -> str:
    """The cache key of one module: its RTLIL, its top name, :data:`SCRIPT`, the Yosys version."""
    h = hashlib.sha256()
    for part in (SCRIPT, top, yosys_version(), rtlil):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _cache_root() -> Path:
    return cache_root() / "synth"


#: Types a cached ``utilisation.json`` must hold, per :class:`Utilisation` field.
_FIELD_TYPES = {"int": int, "float": (int, float), "dict": dict, "str": str, "bool": bool}


def _read_result(folder: Path) -> Utilisation | None:
    """The :class:`Utilisation` a cache folder holds, or None when it is missing or damaged
    (not JSON, a field missing, unknown or of the wrong type): that module is synthesised
    again."""
    info, problem = read_json(folder / "utilisation.json")
    if problem is not None or not isinstance(info, dict):
        return None
    types = {f.name: _FIELD_TYPES[f.type] for f in fields(Utilisation)}
    if set(info) != set(types) or any(
            not isinstance(value, types[name]) or (isinstance(value, bool) and types[name]
                                                   is not bool)
            for name, value in info.items()):
        return None
    return Utilisation(**info)


def cached(rtlil: str, top: str, *, cache=None) -> Utilisation | None:
    """The cached :class:`Utilisation` of ``rtlil`` (text), or None when not synthesised yet."""
    folder = (Path(cache) if cache is not None else _cache_root()) / synthesis_key(rtlil, top)
    result = _read_result(folder)
    if result is not None:
        result.cached = True
    return result


def synthesise(rtlil: str, top: str, *, cache=None, log=None,
               timeout: float | None = None) -> Utilisation:
    """Synthesise one module's RTLIL (text) for UltraScale+ and return its :class:`Utilisation`.

    ``top`` names the module in ``rtlil``. ``cache`` is the folder holding
    one sub-folder per :func:`synthesis_key` (default ``$COSPARSE_CACHE/synth``
    or ``~/.cache/cosparse/synth``); ``log`` receives Yosys's passes as they
    start; ``timeout`` (seconds) stops Yosys. The result carries Yosys's
    wall ``seconds``, ``cpu_seconds`` and peak memory ``max_rss_mb`` (a
    WebAssembly Yosys cannot pass 4 GiB). Raises
    :class:`~cosparse.boards.yosys.ToolMissing` without Yosys and
    :class:`~cosparse.boards.yosys.ToolFailed` (``reason``: one line) when
    Yosys fails (a WebAssembly Yosys out of memory among others) or times out.
    """
    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a module name (an identifier), got {top!r}")
    if not isinstance(rtlil, str) or f"module \\{top}\n" not in rtlil:
        raise ValueError(f"rtlil must be RTLIL text defining module {top!r}")
    hit = cached(rtlil, top, cache=cache)
    if hit is not None:
        return hit
    root = Path(cache) if cache is not None else _cache_root()
    folder = root / synthesis_key(rtlil, top)
    with locked(folder, log):
        # Another process may have finished this module while this one waited.
        hit = cached(rtlil, top, cache=cache)
        if hit is not None:
            return hit
        shutil.rmtree(folder, ignore_errors=True)  # a damaged result, if any
        return _synthesise_into(rtlil, top, root, folder, log, timeout)


def _synthesise_into(rtlil: str, top: str, root: Path, folder: Path, log, timeout) -> Utilisation:
    """Run Yosys in a scratch folder renamed to ``folder`` once its result is written."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=root))
    try:
        (scratch / f"{top}.il").write_text(rtlil)
        # YoWASP's WebAssembly Yosys sees files by paths relative to its working folder.
        (scratch / "synth.ys").write_text(SCRIPT.format(rtlil=f"{top}.il", top=top))
        start = time.perf_counter()
        usage = {}
        for attempt in (1, 2):
            try:
                run_logged([find_tool("yosys"), "synth.ys"], scratch / "yosys.log", cwd=scratch,
                           log=log, usage=usage, timeout=None if timeout is None else
                           max(1.0, timeout - (time.perf_counter() - start)))
                break
            except ToolFailed as error:
                # SIGBUS: YoWASP's compiled-module cache was replaced under the running process
                # (another YoWASP tool compiling it); a second start maps the new one.
                if attempt == 1 and error.returncode == -signal.SIGBUS and not error.timed_out \
                        and (timeout is None or time.perf_counter() - start < timeout):
                    if log:
                        log(f"{top}: Yosys ended by SIGBUS, starting it again")
                    continue
                log_path = root / f"{folder.name}.failed" / "yosys.log"
                failed = ToolFailed(f"synthesis of {top} failed ({error.reason}); log {log_path}",
                                    error.reason, error.returncode, error.timed_out)
                failed.usage = usage
                raise failed from None
        counts = parse_stat((scratch / "stat.json").read_text(), top)
        counts["parts"] = parse_parts((scratch / "parts.json").read_text(), top)
        levels = parse_ltp((scratch / "ltp.txt").read_text(),
                           (scratch / "carry4.txt").read_text())
        result = Utilisation(top=top, logic_levels=levels,
                             seconds=time.perf_counter() - start, **usage, **counts)
        write_atomic(scratch / "utilisation.json", json.dumps(result.as_dict(), indent=1))
        os.rename(scratch, folder)  # under the lock, and the damaged folder is gone
        return result
    finally:
        if scratch.exists() and not (scratch / "utilisation.json").exists():
            # Keep a failed run's log beside the cache for the report to point at.
            failed = root / f"{folder.name}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(scratch, failed)
        shutil.rmtree(scratch, ignore_errors=True)
