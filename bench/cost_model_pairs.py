"""Cost model against cycle-accurate simulation on (random network, random config) pairs.

    python bench/cost_model_pairs.py --pairs 30 [--start 0] [--seeds 0,4,9]
                                     [--simulator amaranth|verilator] [--json FILE] [--gather]

Each pair: ``random_netspec(seed, max_channels=6, max_size=8)`` and a config drawn
from the explorer's options (hw/explore.py ``layer_options``, ``input_widths``); the
design (the AXI4-Stream top) is simulated on :data:`INPUTS` random inputs, cycle
accurate, either in Amaranth's own simulator (sim/pysim.py: no build, seconds a
pair) or through Verilator (sim/run.py: ~30-60 s a pair, the build most of it); both
measure the same RTL the same way and give the same cycle counts. The modelled
interval (hw/cost.py ``cycles`` on the same inputs) and latency (on input 0, the
one whose latency is measured) are compared with the measured ones.
``--gather`` draws a gather engine (hw/engine/gather.py) wherever the explorer offers
one (a conv layer after a local k-WTA); without it the configs are drawn as before
the gather engine existed. tests/sim/test_cost_model.py runs the pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time

from cosparse.hw import cost
from cosparse.hw.config import HwConfig
from cosparse.hw.explore import input_widths, layer_options
from cosparse.sw.netspec import random_inputs, random_netspec

#: Inputs per pair: the latency input, then a stream whose second half sets the interval.
INPUTS = 8

SIMULATORS = ("amaranth", "verilator")


def random_config(spec, seed: int, gather: bool = False) -> HwConfig:
    """A valid config of ``spec`` with every layer's knobs drawn from the explorer's options:
    without gather engines (the pairs drawn before the gather engine existed, unchanged), or
    with ``gather`` a gather engine wherever the explorer offers one."""
    rng = random.Random(seed)
    default = HwConfig.default_for(spec)
    width = rng.choice(input_widths(spec, default.layers[0]))
    for _ in range(20):
        layers = []
        for i, base in enumerate(default.layers):
            options = layer_options(spec, i, base, default)
            wanted = [o for o in options if (o.engine == "gather") == gather]
            options = wanted or [o for o in options if o.engine != "gather"]
            if i == 0 and width > 1:
                options = [o for o in options if o.engine == "window"]
            layers.append(rng.choice(options))
        config = dataclasses.replace(default, layers=tuple(layers), input_width=width)
        try:
            config.validate(spec)
            return config
        except ValueError:
            continue
    return default


def pair(seed: int, gather: bool = False):
    """The pair ``seed``: (spec, config, inputs); ``gather``: :func:`random_config`'s."""
    spec = random_netspec(seed, max_channels=6, max_size=8)
    return spec, random_config(spec, seed, gather), random_inputs(spec, INPUTS, seed=seed)


def simulate(seed: int, simulator: str = "amaranth", cache=None, gather: bool = False) -> dict:
    """Measured ``latency`` (input 0 alone), ``interval`` and ``bit_exact`` of pair ``seed``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    spec, config, x = pair(seed, gather)
    if simulator == "amaranth":
        from cosparse.sim.pysim import measure as pysim_measure
        r = pysim_measure(spec, x, config)
        return {"latency": r["latency"], "interval": r["interval"], "bit_exact": r["bit_exact"]}
    from cosparse.sim.run import simulate as verilator_simulate
    s = verilator_simulate(spec, x, progress=False, cache=cache, config=config, stress=0,
                           seed=seed)["summary"]
    return {"latency": s["latency_cycles"], "interval": s["initiation_interval"],
            "bit_exact": s["all_bit_exact"]}


def model(seed: int, gather: bool = False) -> dict:
    """Modelled interval (all inputs), latency (input 0) and bottleneck of pair ``seed``."""
    spec, config, x = pair(seed, gather)
    stream = cost.cycles(cost.profile(spec, x), config)
    alone = cost.cycles(cost.profile(spec, x[:1]), config)
    return {"interval": stream["interval"], "latency": alone["latency"],
            "bottleneck": stream["bottleneck"]}


def measure(seed: int, simulator: str = "amaranth", cache=None, gather: bool = False) -> dict:
    """Model and simulation of pair ``seed``: intervals, latencies and their relative errors."""
    spec, config, _ = pair(seed, gather)
    m = model(seed, gather)
    start = time.monotonic()
    s = simulate(seed, simulator, cache, gather)
    ii, lat = s["interval"], s["latency"]
    return {"seed": seed, "simulator": simulator, "bit_exact": s["bit_exact"],
            "config": config.to_dict(spec),
            "interval_sim": ii, "interval_model": round(m["interval"], 2),
            "interval_error": round((m["interval"] - ii) / ii, 4),
            "latency_sim": lat, "latency_model": round(m["latency"], 2),
            "latency_error": round((m["latency"] - lat) / lat, 4),
            "bottleneck": m["bottleneck"], "seconds": round(time.monotonic() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seeds", help="comma-separated seeds (instead of --pairs/--start)")
    parser.add_argument("--simulator", choices=SIMULATORS, default="amaranth")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--gather", action="store_true",
                        help="a gather engine wherever the explorer offers one")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else \
        list(range(args.start, args.start + args.pairs))
    rows = []
    for seed in seeds:
        row = measure(seed, args.simulator, gather=args.gather)
        rows.append(row)
        print(f"{seed:3d} ii sim {row['interval_sim']:8.2f} model {row['interval_model']:8.1f} "
              f"({row['interval_error']:+.1%})  latency sim {row['latency_sim']:6d} model "
              f"{row['latency_model']:8.1f} ({row['latency_error']:+.1%})  {row['bottleneck']}"
              f"  {row['seconds']:.0f} s", flush=True)
        if args.json:  # after every pair: a long run stopped early keeps what it measured
            _write(args.json, args.simulator, sys.argv[1:] if argv is None else argv, rows)
    ii = [abs(r["interval_error"]) for r in rows]
    lat = [abs(r["latency_error"]) for r in rows]
    print(f"{len(rows)} pairs, {sum(r['bit_exact'] for r in rows)} bit-exact; interval error "
          f"max {max(ii):.1%} ({sum(e <= 0.1 for e in ii)} within 10%); latency error max "
          f"{max(lat):.1%} ({sum(e <= 0.1 for e in lat)} within 10%)")


def _write(path, simulator, argv, rows):
    ii = [abs(r["interval_error"]) for r in rows]
    lat = [abs(r["latency_error"]) for r in rows]
    with open(path, "w") as f:
        json.dump({"command": "python bench/cost_model_pairs.py " + " ".join(argv),
                   "simulator": simulator, "inputs": INPUTS, "pairs": len(rows),
                   "bit_exact": sum(r["bit_exact"] for r in rows),
                   "interval_abs_error_max": max(ii), "latency_abs_error_max": max(lat),
                   "interval_within_10pct": sum(e <= 0.1 for e in ii),
                   "latency_within_10pct": sum(e <= 0.1 for e in lat), "rows": rows},
                  f, indent=1)

if __name__ == "__main__":
    main()
