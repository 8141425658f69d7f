"""Cost model against cycle-accurate simulation on (random network, random config) pairs.

    python bench/cost_model_pairs.py --pairs 30 [--start 0] [--json FILE]

Each pair: ``random_netspec(seed)`` and a config drawn from the explorer's options
(hw/explore.py ``layer_options``, ``input_widths``); the design is built and simulated
through Verilator on a few random inputs (no stress phase) and the modelled interval and
latency (hw/cost.py ``cycles``) are compared with the measured ones. The same pairs run
as tests/sim/test_cost_model.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time

from cosparse.hw import cost
from cosparse.hw.config import HwConfig
from cosparse.hw.explore import input_widths, layer_options
from cosparse.sw.netspec import random_inputs, random_netspec

#: Inputs per pair: the latency input, then a stream whose second half sets the interval.
INPUTS = 8


def random_config(spec, seed: int) -> HwConfig:
    """A valid config of ``spec`` with every layer's knobs drawn from the explorer's options."""
    rng = random.Random(seed)
    default = HwConfig.default_for(spec)
    width = rng.choice(input_widths(spec, default.layers[0]))
    for _ in range(20):
        layers = []
        for i, base in enumerate(default.layers):
            options = layer_options(spec, i, base, default)
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


def pair(seed: int):
    """The pair ``seed``: (spec, config, inputs)."""
    spec = random_netspec(seed, max_channels=6, max_size=8)
    return spec, random_config(spec, seed), random_inputs(spec, INPUTS, seed=seed)


def measure(seed: int, cache=None) -> dict:
    """Model and simulation of pair ``seed``: intervals, latencies and their relative errors."""
    from cosparse.sim.run import simulate
    spec, config, x = pair(seed)
    model = cost.cycles(cost.profile(spec, x), config)
    start = time.monotonic()
    report = simulate(spec, x, progress=False, cache=cache, config=config, stress=0, seed=seed)
    s = report["summary"]
    ii, lat = s["initiation_interval"], s["latency_cycles"]
    return {"seed": seed, "bit_exact": s["all_bit_exact"], "config": config.to_dict(spec),
            "interval_sim": ii, "interval_model": model["interval"],
            "interval_error": (model["interval"] - ii) / ii,
            "latency_sim": lat, "latency_model": model["latency"],
            "latency_error": (model["latency"] - lat) / lat,
            "bottleneck": model["bottleneck"], "seconds": time.monotonic() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.start, args.start + args.pairs):
        row = measure(seed)
        rows.append(row)
        print(f"{seed:3d} ii sim {row['interval_sim']:8.1f} model {row['interval_model']:8.1f} "
              f"({row['interval_error']:+.1%})  latency sim {row['latency_sim']:6d} model "
              f"{row['latency_model']:8.1f} ({row['latency_error']:+.1%})  {row['bottleneck']}"
              f"  {row['seconds']:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
