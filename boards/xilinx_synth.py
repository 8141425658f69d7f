"""UltraScale+ resource figures of a Verilog design, from Yosys's ``synth_xilinx -family xcup``.

Vivado is not available to this project, so resources come from Yosys's
Xilinx flow (the figures DESIGN.md asks for): the design is flattened and
mapped to UltraScale+ cells without I/O or clock buffers (a kernel is placed
inside a shell, not on pins), with UltraRAM inference for large memories
(``-uram``), as Vivado would place them on a U250.

Counts (:class:`Utilisation`):

- ``lut``: logic LUTs (LUT1-LUT6, INV) plus the LUTs that distributed RAM
  and shift registers occupy (:data:`LUTS_PER_CELL`), Vivado's "CLB LUTs";
- ``ff``: flip-flops (FDRE, FDSE, FDCE, FDPE);
- ``carry``: carry-chain cells; Yosys 0.70 maps UltraScale+ adders to CARRY4
  cells (half a CARRY8 each), recorded by type in ``cells``;
- ``dsp``: DSP48E2; ``bram36``: RAMB36E2 + RAMB18E2 / 2; ``uram``: URAM288;
- ``logic_levels``: the longest path, in cells, through combinational cells
  only (LUTs, carry cells, wide-function muxes), found by Yosys's ``ltp``
  on the mapped netlist after removing every sequential cell (flip-flops,
  DSPs, block/distributed RAM, shift registers): a path starts and ends at
  those cells' pins or at top-level ports. Each carry cell on a chain counts
  as one level, as Vivado counts CARRY8s.

Synthesis of the default network takes many minutes, so results are cached
under ``<cache>/synth/<hash>/`` keyed by the Verilog text and the script, and
the run reports each Yosys pass as it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .yosys import find_tool, run_logged

__all__ = ["Utilisation", "SCRIPT", "LUTS_PER_CELL", "synthesise", "parse_stat", "parse_ltp"]

#: The Yosys script; ``{verilog}`` and ``{top}`` are filled in. Outputs: stat.json, ltp.txt.
SCRIPT = """\
read_verilog {verilog}
synth_xilinx -family xcup -top {top} -flatten -noiopad -noclkbuf -uram
tee -q -o stat.json stat -json
read_verilog -lib +/xilinx/cells_sim.v
hierarchy -top {top}
delete t:FD* t:DSP* t:RAM* t:URAM* t:SRL*
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
    """Resources of one synthesised design (see the module docstring for each count)."""

    top: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: float
    uram: int
    logic_levels: int
    cells: dict = field(default_factory=dict)
    seconds: float = 0.0
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


def parse_ltp(text: str) -> int:
    """Logic levels from Yosys's ``ltp`` report: the path's length (0 for no combinational cell)."""
    match = re.search(r"Longest topological path in \S+ \(length=(-?\d+)\)", text)
    if match is None:
        raise ValueError("no 'Longest topological path' line in the ltp report")
    return max(0, int(match.group(1)))


def _cache_root() -> Path:
    from ..sim.build import cache_root
    return cache_root() / "synth"


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``: YoWASP's WebAssembly Yosys sees the files below
    its working folder's root by relative paths, not by absolute host paths."""
    return os.path.relpath(path.resolve(), folder.resolve())


def synthesise(verilog, top: str, *, cache=None, log=None) -> Utilisation:
    """Synthesise ``verilog`` (a file) for UltraScale+ and return its :class:`Utilisation`.

    ``cache`` is the folder holding one sub-folder per (Verilog, script) hash
    (default ``$COSPARSE_CACHE/synth`` or ``~/.cache/cosparse/synth``);
    ``log`` receives progress lines. Raises :class:`~cosparse.boards.yosys.ToolMissing`
    without Yosys.
    """
    verilog = Path(verilog)
    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a Verilog module name, got {top!r}")
    if not verilog.is_file():
        raise FileNotFoundError(f"no Verilog file {verilog}")
    h = hashlib.sha256(SCRIPT.encode() + top.encode())
    with open(verilog, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            h.update(block)
    folder = Path(cache) if cache is not None else _cache_root()
    folder = folder / h.hexdigest()[:16]
    result_path = folder / "utilisation.json"
    if result_path.exists():
        result = Utilisation(**json.loads(result_path.read_text()))
        result.cached = True
        if log:
            log(f"synthesis of {verilog.name} cached in {folder}")
        return result
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synth.ys").write_text(SCRIPT.format(verilog=_relative(verilog, folder), top=top))
    if log:
        log(f"synthesising {verilog} ({verilog.stat().st_size / 1e6:.1f} MB) with Yosys "
            f"synth_xilinx -family xcup; log {folder / 'yosys.log'}")
    start = time.perf_counter()
    run_logged([find_tool("yosys"), "synth.ys"], folder / "yosys.log", cwd=folder, log=log,
               depth=2)
    counts = parse_stat((folder / "stat.json").read_text(), top)
    result = Utilisation(top=top, logic_levels=parse_ltp((folder / "ltp.txt").read_text()),
                         seconds=time.perf_counter() - start, **counts)
    result_path.write_text(json.dumps(result.as_dict(), indent=1))
    return result
