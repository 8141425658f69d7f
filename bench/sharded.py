"""Benchmark: `cosparse simulate` serial against the same command sharded on a Dask cluster.

Not run in CI (these machines are shared and noisy). Runs, back to back,

    cosparse simulate ARGS --json                  (serial)
    cosparse simulate ARGS --json --workers K      (a local Dask cluster of K workers)

each as the command a user types (process start to exit, wall clock),
checks that both give, for every input in order, the same name, class,
logits and verdict, and prints both wall times, the speed-up, each run's
simulation speed and the machine's load average before and after (the
machine is shared: the load says what the figures are worth). The design
is built first (a serial run of one input) so that neither run pays for it.

    python bench/sharded.py --dataset data/gsc-synth --limit 200 --workers 2
    python bench/sharded.py --dataset data/gsc-synth --limit 200 --workers 2 --repeat 2 --json

Extra `cosparse simulate` options go after `--` (e.g. `-- --netspec DIR`).
Exits 1 if the outputs differ or any output is not bit-exact.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _simulate(args: list[str]) -> tuple[dict, float]:
    command = [sys.executable, "-m", "cosparse.sw.cli", "simulate", *args, "--json",
               "--no-progress"]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode not in (0, 1):  # 1: a mismatch, reported below
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout), wall


def _outputs(report: dict) -> list:
    return [(r["index"], r["name"], r["prediction"], r["logits"], r["bit_exact"])
            for r in report["inputs"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, metavar="DIR")
    parser.add_argument("--limit", type=int, required=True, metavar="N")
    parser.add_argument("--workers", type=int, default=2, metavar="K")
    parser.add_argument("--repeat", type=int, default=1, help="serial/sharded pairs (default 1)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("rest", nargs="*", help="more `cosparse simulate` options, after --")
    args = parser.parse_args(argv)

    common = ["--dataset", args.dataset, "--limit", str(args.limit), *args.rest]
    _simulate(["--dataset", args.dataset, "--limit", "1", "--stress", "0", *args.rest])
    rows, same = [], True
    for _ in range(args.repeat):
        load_before = os.getloadavg()
        serial, serial_wall = _simulate(common)
        sharded, sharded_wall = _simulate(common + ["--workers", str(args.workers)])
        load_after = os.getloadavg()
        identical = _outputs(serial) == _outputs(sharded)
        exact = serial["summary"]["all_bit_exact"] and sharded["summary"]["all_bit_exact"]
        same = same and identical and exact
        rows.append({
            "inputs": serial["summary"]["inputs"], "workers": args.workers,
            "shards": sharded["summary"]["sharded"]["shards"],
            "serial_wall_seconds": serial_wall, "sharded_wall_seconds": sharded_wall,
            "speedup": serial_wall / sharded_wall,
            "serial_sim_inputs_per_second": serial["summary"]["sim_inputs_per_second"],
            "sharded_sim_inputs_per_second_per_simulator":
                sharded["summary"]["sim_inputs_per_second"],
            "sharded_inputs_per_second": sharded["summary"]["sharded"]["inputs_per_second"],
            "identical_outputs": identical, "all_bit_exact": exact,
            "outputs_checked": [serial["summary"]["outputs_checked"],
                                sharded["summary"]["outputs_checked"]],
            "initiation_interval": [serial["summary"]["initiation_interval"],
                                    sharded["summary"]["initiation_interval"]],
            "load_average_1min_before_after": [load_before[0], load_after[0]],
        })
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'inputs':>6} {'shards':>6} {'serial s':>9} {'sharded s':>9} {'speed-up':>8} "
              f"{'identical':>9} {'load before/after':>17}")
        for r in rows:
            load = "/".join(f"{v:.1f}" for v in r["load_average_1min_before_after"])
            print(f"{r['inputs']:>6} {r['shards']:>6} {r['serial_wall_seconds']:>9.1f} "
                  f"{r['sharded_wall_seconds']:>9.1f} {r['speedup']:>7.2f}x "
                  f"{'yes' if r['identical_outputs'] and r['all_bit_exact'] else 'NO':>9} "
                  f"{load:>17}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
