"""Benchmark: ``cosparse resources`` on one NetSpec, the report kept under bench/results/.

Not run in CI (the default network's modules take many minutes). Runs the
per-module out-of-context synthesis of cosparse.boards.resources (the sparse
design and its dense baseline, docs/resources.md), prints the per-module
tables, the ratios and the published figures, and writes the JSON report,
with the command and this machine's CPU count and load, to
``bench/results/resources-<name>.json`` (and ``resources.png`` beside it with
``--out``). ``--random SEED`` rates a small random network instead of the
shipped default.

    python bench/resources.py
    python bench/resources.py --random 4 --max-channels 24 --max-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    from cosparse.boards.resources import format_report, resource_report, write_report
    from cosparse.sw import assets, netspec
    from cosparse.sw.netspec import random_netspec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--netspec", metavar="DIR", help="NetSpec (default: shipped model)")
    source.add_argument("--random", type=int, metavar="SEED",
                        help="a small random NetSpec (sw/netspec/random.py) instead")
    parser.add_argument("--max-channels", type=int, default=8,
                        help="with --random: most channels per layer (default 8)")
    parser.add_argument("--max-size", type=int, default=12,
                        help="with --random: largest input side (default 12)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--module-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--time-limit", type=float, default=1080.0, metavar="SECONDS")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="where the JSON goes (default bench/results/resources-<name>.json)")
    parser.add_argument("--out", metavar="DIR", help="also write resources.json and .png here")
    args = parser.parse_args(argv)

    if args.random is not None:
        spec = random_netspec(args.random, max_channels=args.max_channels,
                              max_size=args.max_size)
        label = f"random{args.random}"
    else:
        spec = netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC,
                                                           "default NetSpec"))
        label = "default" if args.netspec is None else spec.name
    load_before = os.getloadavg()
    report = resource_report(spec, jobs=args.jobs, module_timeout=args.module_timeout,
                             time_limit=args.time_limit,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    report["bench"] = {"command": " ".join(["python", "bench/resources.py", *sys.argv[1:]]),
                       "cpus": os.cpu_count(), "load_average_before": load_before,
                       "load_average_after": os.getloadavg()}
    path = args.results or RESULTS / f"resources-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    if args.out:
        write_report(report, args.out)
    print(format_report(report))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
