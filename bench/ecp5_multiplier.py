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

- ``inferred``: :class:`~cosparse.hw.multiplier.RegisteredMultiplier`
  elaborated for no platform: operand registers and a product register
  in the design, ``p <= a_r * b_r``, as the units wrote it before the
  component;
- ``primitive``: the same component elaborated for the part's Amaranth
  platform (:func:`~cosparse.boards.timing.part_platform`, as ``cosparse
  timing`` does): a MULT18X18D instance with its input A/B and output
  registers on (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``, ``REG_OUTPUT_CLK``
  = ``CLK0``), the same two-cycle pipeline inside the DSP block.

    python bench/ecp5_multiplier.py [--out DIR] [--json]
"""

import argparse
import json
import sys
from pathlib import Path

from amaranth import signed
from amaranth.back import rtlil

from cosparse.boards.timing import PARTS, RegisteredHarness, parse_report, part_platform
from cosparse.boards.yosys import find_tool, run_logged
from cosparse.hw.multiplier import RegisteredMultiplier

WIDTH = 18

#: Variant: whether it is elaborated for the part's platform (the MULT18X18D's registers).
VARIANTS = {"inferred": False, "primitive": True}


def place_and_route(name: str, out: Path, clock_mhz: float = 300.0) -> dict:
    """Synthesise and place and route variant ``name`` on the ECP5-85F; nextpnr's figures."""
    part = PARTS["ecp5-85f"]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    product = RegisteredMultiplier(signed(WIDTH), signed(WIDTH), stages=2)
    harness = RegisteredHarness(product, global_buffer=part.global_buffer)
    platform = part_platform(part.key) if VARIANTS[name] else None
    (folder / "top.il").write_text(rtlil.convert(harness, name="top", platform=platform))
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
