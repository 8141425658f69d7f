"""The ``run`` and ``throughput`` subcommands of ``cosparse``: the kernel via the driver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cosparse

from .. import inputs
from .api import BACKENDS, open_device

__all__ = ["register_cli", "format_throughput"]

_XRT_HELP = "xrt: the kernel's xclbin (cosparse build --board u250; docs/boards.md)"


def register_cli(subparsers):
    parser = subparsers.add_parser(
        "run", help="run inputs through the kernel with the host driver (sim or xrt backend)",
        description="Run inputs through the Vitis RTL kernel with the host driver: `--backend "
                    "sim` builds the kernel with Verilator (cached) and drives its AXI ports "
                    "with cocotb, checking every result against the golden model; `--backend "
                    "xrt` runs an xclbin on an Alveo card through pyxrt. Prints one line per "
                    "input and, with --throughput N, a throughput report. With no input option "
                    "it runs the shipped sample clips.")
    parser.add_argument("--backend", default="sim", choices=BACKENDS,
                        help="sim (simulated kernel, default) or xrt (an Alveo card)")
    inputs.add_netspec_argument(parser)
    inputs.add_input_arguments(parser)
    parser.add_argument("--throughput", type=inputs.positive(int), metavar="N",
                        help="also run N inputs back to back (the inputs repeated) and report "
                             "inputs/s, latency and host time")
    inputs.add_hw_config_argument(parser)
    parser.add_argument("--xclbin", metavar="FILE", help="xrt: the kernel's xclbin")
    parser.add_argument("--device", default="0", help="xrt: device index or PCIe BDF "
                                                      "(default 0)")
    parser.add_argument("--xrt-python", metavar="PYTHON",
                        help="xrt: drive pyxrt through a Python that imports it (docs/driver.md)")
    parser.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                        help="sim: probability of a stall per cycle on each memory channel")
    parser.add_argument("--timeout", type=inputs.positive(float), metavar="SECONDS",
                        help="wall-clock seconds a run may wait for ap_done (sim default: "
                             "proportional to the run's expected cycles, at least 120 s; "
                             "xrt: its own default)")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.set_defaults(func=_run)
    _register_throughput(subparsers)


def _register_throughput(subparsers):
    parser = subparsers.add_parser(
        "throughput", help="measure inputs/s and latency of the kernel (sim or a card)",
        description="Run batches of inputs back to back through the kernel's compute units and "
                    "report inputs/s from the kernel's own cycle counter at the clock read from "
                    "the xclbin or device (sim: the assumed clock), latency p50/p99 of single "
                    "inputs, host packing/transfer/kernel/unpacking times apart, and the "
                    "fraction of the analytic bound (units x clock / II) achieved. The "
                    "kernel's NetSpec fingerprint must match --netspec.")
    parser.add_argument("--backend", default="sim", choices=BACKENDS)
    inputs.add_netspec_argument(parser)
    parser.add_argument("--xclbin", metavar="FILE", help=_XRT_HELP)
    parser.add_argument("--device", default="0", help="xrt: device index or PCIe BDF")
    parser.add_argument("--instances", type=inputs.positive(int), metavar="N",
                        help="xrt: compute units to use (default: all in the xclbin); sim "
                             "simulates one")
    parser.add_argument("--batch", type=inputs.positive(int), default=64, metavar="B",
                        help="inputs per batch, shared by the compute units (default 64)")
    parser.add_argument("--repeat", type=inputs.positive(int), default=3, metavar="R",
                        help="batches run back to back (default 3)")
    parser.add_argument("--latency-runs", type=inputs.positive(int), default=5, metavar="L",
                        help="single inputs run for the latency percentiles (default 5)")
    parser.add_argument("--timeout", type=inputs.positive(float), default=60.0, metavar="S",
                        help="xrt: seconds to wait for one run (default 60)")
    parser.add_argument("--xrt-python", metavar="PYTHON",
                        help="xrt: drive pyxrt through a Python that imports it (e.g. "
                             "/usr/bin/python3 on Ubuntu 20.04/22.04), when this one cannot")
    parser.add_argument("--check", action="store_true",
                        help="compare every result with the golden model (exit 1 on a "
                             "difference; sim checks by default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.set_defaults(func=_throughput)


def _throughput(args):
    from .throughput import format_report, measure
    if args.backend == "sim":
        if args.instances not in (None, 1):
            raise ValueError("the sim backend simulates one compute unit; --instances is for "
                             "--backend xrt")
        options = {"log": lambda message: print(message, file=sys.stderr)}
    else:
        device = int(args.device) if args.device.isdigit() else args.device
        options = {"xclbin": args.xclbin, "device": device, "instances": args.instances,
                   "timeout": args.timeout, "xrt_python": args.xrt_python}
    driver = open_device(args.backend, args.netspec, check=True if args.check else None,
                         **options)
    with driver:
        report = measure(driver, batch=args.batch, repeat=args.repeat,
                         latency_runs=args.latency_runs, seed=args.seed)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(format_report(report)))
    return 1 if report["bit_exact"] is False else 0


def _options(args) -> dict:
    if args.backend == "sim":
        return {"backpressure": args.backpressure, "timeout": args.timeout,
                "log": lambda message: print(message, file=sys.stderr)}
    device = int(args.device) if args.device.isdigit() else args.device
    options = {"xclbin": args.xclbin, "device": device, "xrt_python": args.xrt_python}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    return options


def format_throughput(t: dict) -> list:
    """The lines of a :meth:`Driver.throughput` report, as printed."""
    clock = f"{t['clock_hz'] / 1e6:.0f} MHz " + ("assumed" if t["clock_assumed"]
                                                 else "read from the card")
    h = t["host_seconds"]
    lines = [
        f"throughput ({t['backend']}, {t['inputs']} inputs back to back): "
        f"{t['inputs_per_second']:,.0f} inputs/s at {clock}",
        f"kernel: {t['kernel_cycles']:,} cycles, {t['cycles_per_input']:,.1f} per input"
        + (f" ({t['marginal_cycles_per_input']:,.1f} per extra input)"
           if t["marginal_cycles_per_input"] is not None else "")
        + f"; latency of one input {t['latency_cycles']:,} cycles "
          f"({1e6 * t['latency_seconds']:,.1f} us)",
        f"host: pack {1e3 * h['pack']:.1f} ms, transfer {1e3 * h['transfer']:.1f} ms, "
        f"kernel wall {h['kernel']:.2f} s, unpack {1e3 * h['unpack']:.1f} ms: "
        f"{t['host_inputs_per_second']:,.1f} inputs/s end to end",
    ]
    if t["bit_exact"] is not None:
        lines.append(f"bit-exact with the golden model: {'yes' if t['bit_exact'] else 'NO'}")
    return lines


def _run(args):
    inputs.check_input_arguments(args)
    spec = inputs.load_netspec(args)
    config = inputs.load_hw_config(args, spec)
    data = inputs.resolve(args, spec)  # checked before the (minutes-long) kernel build
    ran = cosparse.run(spec, data.x, backend=args.backend, hw_config=config,
                       throughput=args.throughput, **_options(args))
    throughput = ran["throughput"]
    classes = list(spec.classes)
    rows = []
    for i, name in enumerate(data.names):
        label = int(data.labels[i])
        rows.append({"name": name, "label": classes[label] if 0 <= label < len(classes) else None,
                     "prediction": classes[int(ran["predictions"][i])],
                     "logits": ran["logits"][i].tolist()})
    report = {"backend": args.backend, "netspec": spec.name, "inputs": rows,
              "cycles": ran["cycles"], "bit_exact": ran["bit_exact"],
              "host_seconds": ran["host_seconds"], "throughput": throughput}
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        width = max([len(Path(r["name"]).name) for r in rows] + [5])
        print(f"{'input':<{width}}  {'label':<8} {'predicted':<9}")
        for r in rows:
            print(f"{Path(r['name']).name:<{width}}  {r['label'] or '-':<8} {r['prediction']:<9}")
        print(f"\n{len(rows)} inputs in {ran['cycles']:,} kernel cycles"
              + ("" if ran["bit_exact"] is None else
                 f"; bit-exact with the golden model: {'yes' if ran['bit_exact'] else 'NO'}"))
        if throughput:
            print("\n".join(format_throughput(throughput)))
    failed = ran["bit_exact"] is False or (throughput and throughput["bit_exact"] is False)
    return 1 if failed else 0
