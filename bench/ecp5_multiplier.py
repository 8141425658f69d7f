"""Benchmark: how fast one ECP5 multiplier can be clocked, inferred by Yosys or instantiated.

Not run in CI (two place-and-route runs, about a minute). The scaled GSC
network's critical path on the ECP5-85F (`cosparse timing --scaled`) runs
through a MULT18X18D: Yosys's ``synth_ecp5`` maps ``a * b`` onto one with
every internal register off, so a product between two fabric registers
pays the multiplier's combinational delay plus a route into it and a route
out. This measures the bound that puts on any design built that way, and
what the primitive's own registers give, on one signed 18 x 18 product in
the registered harness of ``cosparse timing`` (boards/timing.py: a shift
register drives the operands, the product is folded to one pin):

- ``inferred``: operand registers and a product register in the design,
  ``p <= a_r * b_r``, as the engines and requantisers write it;
- ``primitive``: a MULT18X18D instance with its input A/B and output
  registers on (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``, ``REG_OUTPUT_CLK``
  = ``CLK0``): the same two-cycle pipeline inside the DSP block.

    python bench/ecp5_multiplier.py [--out DIR] [--json]
"""

import argparse
import json
import sys
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, Signal, signed
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cosparse.boards.timing import PARTS, RegisteredHarness, parse_report
from cosparse.boards.yosys import find_tool, run_logged

WIDTH = 18


class _Product(wiring.Component):
    """A signed ``WIDTH x WIDTH`` product, two cycles from ``a``, ``b`` to ``p``."""

    a: In(signed(WIDTH))
    b: In(signed(WIDTH))
    p: Out(signed(2 * WIDTH))


class InferredProduct(_Product):
    """``p <= a_r * b_r`` with ``a_r``, ``b_r`` registered: Yosys picks the multiplier."""

    def elaborate(self, platform):
        m = Module()
        a_r, b_r = Signal(signed(WIDTH)), Signal(signed(WIDTH))
        m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), self.p.eq(a_r * b_r)]
        return m


class RegisteredMult18(_Product):
    """The same pipeline as :class:`InferredProduct` inside an ECP5 MULT18X18D."""

    def elaborate(self, platform):
        m = Module()
        ports = {f"i_A{i}": self.a[i] for i in range(WIDTH)}
        ports.update({f"i_B{i}": self.b[i] for i in range(WIDTH)})
        ports.update({f"o_P{i}": self.p[i] for i in range(2 * WIDTH)})
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(),
            i_CE0=1, i_RST0=0, **ports)
        return m


VARIANTS = {"inferred": InferredProduct, "primitive": RegisteredMult18}


def place_and_route(name: str, out: Path, clock_mhz: float = 300.0) -> dict:
    """Synthesise and place and route variant ``name`` on the ECP5-85F; nextpnr's figures."""
    part = PARTS["ecp5-85f"]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    harness = RegisteredHarness(VARIANTS[name](), global_buffer=part.global_buffer)
    (folder / "top.il").write_text(rtlil.convert(harness, name="top"))
    run_logged([find_tool("yosys"), "-q", "-l", "yosys.log", "-p",
                f"read_rtlil top.il; {part.synth} -top top; write_json top.json"],
               folder / "yosys.out", cwd=folder)
    run_logged([find_tool(part.nextpnr), *part.args, "--json", "top.json", "--freq",
                str(clock_mhz), "--timing-allow-fail", "--seed", "1", "--report",
                "report.json"], folder / "nextpnr.out", cwd=folder)
    result = parse_report(json.loads((folder / "report.json").read_text()))
    return {"variant": name, "part": part.device, "fmax_mhz": round(result["fmax_mhz"], 2),
            "utilisation": result["utilisation"], "critical_path": result["critical_path"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/ecp5-multiplier", metavar="DIR")
    parser.add_argument("--json", action="store_true", help="the results as JSON on stdout")
    args = parser.parse_args(argv)
    rows = [place_and_route(name, Path(args.out)) for name in VARIANTS]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        path = row["critical_path"] or {}
        print(f"{row['variant']:10s} {row['fmax_mhz']:7.1f} MHz  critical path "
              f"{path.get('delay_ns', 0):.2f} ns ({path.get('logic_ns', 0):.2f} logic): "
              f"{path.get('from')} -> {path.get('to')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
