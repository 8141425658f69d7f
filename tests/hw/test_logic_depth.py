"""Logic depth of the units between the engines: at most 8 levels as Vivado counts them.

Each unit is synthesised alone with the project's Yosys script
(``synth_xilinx -family xcup``; cosparse.hw.depth), and the longest
register-to-register path is counted with a chained pair of CARRY4 cells
as one level (one CARRY8). The sizes are small stand-ins for the default
network's (docs/hw-kwta.md has the default's own figures from
bench/unit_depth.py): the depth of these units grows with the group
structure (groups of 8 channels), not with the channel count beyond it.
"""

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cosparse.boards.yosys import ToolMissing, find_tool
from cosparse.hw.argmax import Argmax
from cosparse.hw.depth import carry_paired_levels, measure
from cosparse.hw.kwta.local import LocalKWTA
from cosparse.hw.requant import Requantiser
from cosparse.hw.sparsify import Sparsifier

MAX_LEVELS = 8


def _yosys():
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))


def _cell(kind, inputs, outputs):
    ports = {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}
    return {"type": kind, "port_directions": ports, "connections": {**inputs, **outputs}}


def test_carry_pairs_count_as_one_level():
    """A LUT, four chained CARRY4s and a LUT: 1 + 2 + 1 levels; ltp would say 6."""
    cells = {"lut_in": _cell("LUT2", {"I0": [2], "I1": [3]}, {"O": [10]})}
    carry_in = [10]
    for n in range(4):
        cells[f"carry{n}"] = _cell("CARRY4", {"CI": carry_in if n else ["0"], "S": [10, 4, 4, 4],
                                              "DI": [5, 5, 5, 5]},
                                   {"CO": [20 + 4 * n, 21 + 4 * n, 22 + 4 * n, 23 + 4 * n]})
        carry_in = [23 + 4 * n]
    cells["lut_out"] = _cell("LUT1", {"I0": carry_in}, {"O": [40]})
    netlist = {"modules": {"top": {"cells": cells}}}
    assert carry_paired_levels(netlist, "top") == 4
    # Three chained CARRY4s: two levels of carry (the third starts a new pair).
    cells["lut_out"]["connections"]["I0"] = [19 + 4 * 3]
    assert carry_paired_levels(netlist, "top") == 4
    cells["lut_out"]["connections"]["I0"] = [19 + 4 * 2]
    assert carry_paired_levels(netlist, "top") == 3


def test_loop_is_an_error():
    cells = {"a": _cell("LUT1", {"I0": [2]}, {"O": [3]}),
             "b": _cell("LUT1", {"I0": [3]}, {"O": [2]})}
    with pytest.raises(ValueError, match="loop"):
        carry_paired_levels({"modules": {"top": {"cells": cells}}}, "top")


class _Units(wiring.Component):
    """Several units side by side, each with its own ports: one synthesis for all."""

    def __init__(self, units):
        self._units = units
        super().__init__({f"{name}_{port}": (In if port == "i" else Out)(
            getattr(unit, port).signature.flip() if port == "i" else getattr(unit, port).signature)
            for name, unit in units.items() for port in ("i", "o")})

    def elaborate(self, platform):
        m = Module()
        for name, unit in self._units.items():
            m.submodules[name] = unit
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_i")), unit.i)
            wiring.connect(m, unit.o, wiring.flipped(getattr(self, f"{name}_o")))
        return m


@pytest.mark.slow
def test_units_within_eight_levels(tmp_path):
    """A local k-WTA (two groups of 8 channels, fraction bits), a requantiser, a flat
    Sparsifier and an argmax, synthesised together: no path deeper than 8 levels."""
    _yosys()
    units = _Units({
        "local_kwta": LocalKWTA((16, 2, 2), 4, frac_bits=2),
        "requantiser": Requantiser(16, 26, list(range(100, 116)), [5] * 15 + [40],
                                   frac_bits=4),
        "sparsifier": Sparsifier((2, 4, 4), order="flat"),
        "argmax": Argmax(12)})
    depth = measure(units, "units", cache=tmp_path)
    assert depth.levels <= MAX_LEVELS, depth
    assert depth.levels <= depth.ltp  # pairing carries never adds levels
    assert depth.dsp == 1  # the requantiser's product in one DSP48E2
