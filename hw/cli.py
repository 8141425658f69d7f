"""``cosparse generate``: NetSpec -> Verilog top level and a summary of the design."""

from __future__ import annotations

import json
from ..sw import inputs
from .output import check_out

__all__ = ["register_cli", "format_table"]

def register_cli(subparsers):
    parser = subparsers.add_parser(
        "generate", help="NetSpec -> Amaranth design -> Verilog + summary",
        description="Generate the accelerator for a NetSpec: writes <out>/cosparse_top.v, "
                    "<out>/summary.json and <out>/hw_config.json (the hardware config used, "
                    "docs/hardware.md) and prints the per-layer summary.")
    inputs.add_netspec_argument(parser)
    parser.add_argument("--dense", action="store_true",
                        help="build the dense baseline (every weight x every input)")
    inputs.add_hw_config_argument(parser)
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--emit-src", action="store_true",
                        help="keep the (* src *) attributes that name the Python line of every "
                             "cell (off: they are a third of the Verilog)")
    parser.set_defaults(func=_run)


def format_table(report: dict) -> str:
    """The summary as a fixed-width table, one row per engine."""
    head = ("layer", "kind", "engine", "out", "G", "n", "lanes", "offsets", "passes", "weight bits",
            "acc bits", "accumulate", "drain", "cycles/input", "after")
    rows = [head]
    for r in report["layers"]:
        after = "-" if r["after_cycles"] is None else f"{r['after_cycles']:.0f}"
        rows.append((r["name"], r["kind"], r["engine"], "x".join(map(str, r["out_shape"])), r["groups"],
                     r["n"], r["lanes"], r["offsets"], r["passes"], r["weight_memory_bits"],
                     r["accumulator_bits"], f"{r['accumulate_cycles']:.0f}", r["drain_cycles"],
                     f"{r['cycles_per_input']:.0f}", after))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in rows]
    lines.append(f"input: {report['input_cycles']} cycles; initiation interval "
                 f"~{report['initiation_interval']:.0f} cycles ({report['bottleneck']}), "
                 f"{report['multipliers']} multipliers")
    return "\n".join(lines)


def _run(args):
    import cosparse

    check_out(args.out)  # before the NetSpec is read: a bad --out costs nothing
    spec = inputs.load_netspec(args)
    report = cosparse.generate(spec, args.out, hw_config=args.hw_config, dense=args.dense,
                                emit_src=args.emit_src)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
