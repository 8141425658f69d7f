"""Benchmark: cycle-accurate simulation of the sparse-sparse design and its dense baseline.

Not run in CI (these machines are shared and noisy). Prints, for one NetSpec
(default: the shipped default model):

- the steady-state initiation interval (cycles between results with inputs
  back to back) of the sparse-sparse design, of the dense baseline built by
  the same generator, and their ratio, per instance and per multiplier (the
  two designs have different multiplier counts); inputs/s at an assumed
  250 MHz clock;
- bit-exactness against the golden model on every input;
- simulation speed (inputs/s and cycles/s) and the Verilog generation and
  Verilator build times (0 when the build was cached; --fresh forces a build).

    python bench/simulate.py                                   # shipped samples
    python bench/simulate.py --dataset data/gsc-synth --limit 500
    python bench/simulate.py --netspec DIR --dense-limit 4 --json

Exits 1 if any output differs from the golden model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def main(argv=None) -> int:
    from cosparse.sim.run import ASSUMED_CLOCK_HZ, simulate
    from cosparse.sw import assets, inputs, netspec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netspec", metavar="DIR", help="NetSpec (default: shipped model)")
    inputs.add_input_arguments(parser)
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--dense-limit", type=int, default=8, metavar="N",
                        help="inputs simulated on the dense baseline (slow; default 8, 0 skips)")
    parser.add_argument("--stress", type=int, default=16,
                        help="inputs re-streamed with random gaps/backpressure (default 16)")
    parser.add_argument("--fresh", action="store_true",
                        help="build in a fresh cache folder to time generation and build")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    spec = netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC,
                                                       "default NetSpec"))
    data = inputs.resolve(args)
    cache = tempfile.mkdtemp(prefix="cosparse-bench-") if args.fresh else None
    log = (lambda m: print(m, file=sys.stderr))
    start = time.perf_counter()
    sparse = simulate(spec, data.x, simulator=args.sim, stress=args.stress, cache=cache,
                      progress=not args.json, log=log)
    dense = None
    if args.dense_limit > 0:
        n = min(len(data.x), max(2, args.dense_limit))
        dense = simulate(spec, data.x[:n], simulator=args.sim, dense=True,
                         stress=min(2, n), cache=cache, progress=not args.json, log=log)
    wall = time.perf_counter() - start

    s = sparse["summary"]
    out = {"netspec": spec.name, "simulator": args.sim, "inputs": len(data.x),
           "assumed_clock_hz": ASSUMED_CLOCK_HZ,
           "sparse": {k: s[k] for k in (
               "bit_exact", "outputs_checked", "all_bit_exact", "latency_cycles",
               "initiation_interval", "initiation_interval_model", "inputs_per_second_at_clock",
               "sim_inputs_per_second", "sim_cycles_per_second", "generate_seconds",
               "build_seconds", "build_cached", "engines")},
           "wall_seconds": wall}
    ok = s["all_bit_exact"]
    if dense is not None:
        d = dense["summary"]
        out["dense"] = {k: d[k] for k in (
            "inputs", "bit_exact", "outputs_checked", "all_bit_exact", "initiation_interval",
            "initiation_interval_model", "sim_cycles_per_second", "generate_seconds",
            "build_seconds", "build_cached")}
        ok = ok and d["all_bit_exact"]
        if s["initiation_interval"] and d["initiation_interval"]:
            ratio = d["initiation_interval"] / s["initiation_interval"]
            out["dense_over_sparse_interval"] = ratio
            # The two designs differ in size as well as in cycles: per multiplier too.
            from cosparse.hw.generate import summary
            multipliers = {"sparse": summary(spec)["multipliers"],
                           "dense": summary(spec, dense=True)["multipliers"]}
            out["multipliers"] = multipliers
            out["dense_over_sparse_per_multiplier"] = \
                ratio * multipliers["dense"] / multipliers["sparse"]
    if args.json:
        print(json.dumps(out, indent=1))
        return 0 if ok else 1

    def line(name, r):
        ii = r["initiation_interval"]
        return (f"{name:<7} II {ii:>10,.0f} cycles (model {r['initiation_interval_model']:,.0f})"
                f"  {ASSUMED_CLOCK_HZ / ii:>12,.0f} inputs/s @ {ASSUMED_CLOCK_HZ / 1e6:.0f} MHz "
                f"(assumed)  bit-exact {r['bit_exact']}/{r['outputs_checked']}")
    print(f"{spec.name}: {len(data.x)} inputs, {args.sim}")
    print(line("sparse", s))
    if dense is not None:
        print(line("dense", dense["summary"]) + f"  [{dense['summary']['inputs']} inputs]")
        if "dense_over_sparse_interval" in out:
            print(f"speed-up (dense II / sparse II): {out['dense_over_sparse_interval']:.1f}x per "
                  f"instance; multipliers sparse {out['multipliers']['sparse']:,}, dense "
                  f"{out['multipliers']['dense']:,}: "
                  f"{out['dense_over_sparse_per_multiplier']:.1f}x per multiplier")
    print(f"simulation: {s['sim_inputs_per_second']:,.1f} inputs/s, "
          f"{s['sim_cycles_per_second']:,.0f} cycles/s (sparse stream phase)")
    for name, r in (("sparse", s), ("dense", dense and dense["summary"])):
        if r:
            print(f"{name} build: " + ("cached (use --fresh to time it)" if r["build_cached"]
                  else f"{r['generate_seconds']:.1f} s Verilog generation, "
                       f"{r['build_seconds']:.1f} s Verilator build"))
    print(f"total wall time {wall:.0f} s; report: {sparse['report_path']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
