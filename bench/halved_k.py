"""Benchmark: does the interval scale with the sparsity? Every k-WTA's k halved, same multipliers.

Not run in CI (a Verilator build of each design takes minutes). Builds, for one
NetSpec (default: the shipped default model), the network as given and the
same network with every k-WTA's ``k`` halved (rounded up), both with ONE
hardware config (the same engines, lanes and multipliers): the given NetSpec's
:meth:`HwConfig.default_for`, except that a window engine (the default's
conv1) gets one lane per group, one pass, so that its fixed walk of
``H*W`` = 1,024 cycles (the input stage's pace too) is not what binds both
designs, and the local k-WTA after it searches 3 threshold bits a step
(config ``search_bits``; comparators, not multipliers) so that it keeps pace
with that engine; the scatter conv engines (conv2) get word accumulators
(``--accumulators``): their kernel-addressed ones read ``n`` sums per output
position whatever ``k`` (conv2 alone, Amaranth simulation of the shipped
samples: 1,734 cycles as given and 1,142 halved with them, 1,616 and 832
with word accumulators); and the network reads ``--input-width`` features a
cycle (HwConfig ``input_width``, default 2: the window engine takes them
straight from the input, so the input stage takes ``H*W / 2`` cycles and
the window walk, not the input, is conv1's floor). Prints the analytical
interval of each (hw/generate.py
``summary``), the cycle-accurate steady-state interval of a few inputs
(Verilator, sim/run.py), the bottlenecks and the ratios:

    python bench/halved_k.py                       # shipped samples
    python bench/halved_k.py --limit 8 --out halved.json
    python bench/halved_k.py --no-sim              # the model only (seconds)

Exits 1 if a simulated output differs from the golden model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def halved(spec):
    """``spec`` with every k-WTA's ``k`` halved (rounded up, at least 1)."""
    from cosparse.sw.netspec import KWTA, NetSpec

    layers = tuple(dataclasses.replace(layer, k=max(1, -(-layer.k // 2)))
                   if isinstance(layer, KWTA) else layer for layer in spec.layers)
    return NetSpec(name=f"{spec.name}-halved-k", input=spec.input, layers=layers,
                   classes=spec.classes)


def bench_config(spec, accumulators: str = "word", input_width: int = 1):
    """:meth:`HwConfig.default_for` of ``spec`` with every window engine at one pass and
    the local k-WTA after it deciding 3 threshold bits a step (``search_bits``), so that
    its search keeps pace with the faster engine; ``accumulators`` for every scatter conv
    engine (``"default"``: default_for's choice); ``input_width`` features a cycle into a
    window engine first."""
    from cosparse.hw.config import HwConfig

    config = HwConfig.default_for(spec)
    layers = []
    for layer, cfg in zip(spec.packed_layers, config.layers):
        if cfg.engine == "window":
            cfg = dataclasses.replace(cfg, lanes=layer.groups, search_bits=3)
        elif layer.kind == "conv2d" and accumulators != "default":
            cfg = dataclasses.replace(cfg, accumulators=accumulators)
        layers.append(cfg)
    return dataclasses.replace(config, layers=tuple(layers), input_width=input_width)


def main(argv=None) -> int:
    from cosparse.hw.generate import summary
    from cosparse.sw import assets, inputs, netspec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netspec", metavar="DIR", help="NetSpec (default: shipped model)")
    inputs.add_input_arguments(parser)
    parser.add_argument("--count", type=int, default=6,
                        help="inputs simulated per design (default 6)")
    parser.add_argument("--no-sim", action="store_true", help="the analytical model only")
    parser.add_argument("--accumulators", default="word", choices=("word", "kernel", "default"),
                        help="accumulators of the scatter conv engines (default: word; their "
                             "drain, one word per position, shrinks with the winners' rows "
                             "where kernel-addressed ones read n sums per position)")
    parser.add_argument("--input-width", type=int, default=2,
                        help="features a cycle into the first (window) engine (HwConfig "
                             "input_width; default 2; 1: one a cycle through the Sparsifier)")
    parser.add_argument("--out", metavar="JSON", help="also write the results as JSON")
    args = parser.parse_args(argv)

    spec = netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC,
                                                       "default NetSpec"))
    x = inputs.resolve(args, spec).x[:max(2, args.count)]
    config = bench_config(spec, args.accumulators, args.input_width)
    designs = {"as given": spec, "k halved": halved(spec)}
    rows, ok = {}, True
    for name, design in designs.items():
        model = summary(design, config, inputs=x)
        row = {"k": [f"{layer.name} {layer.mode} k={layer.k}" for layer in design.layers
                     if layer.kind == "kwta"],
               "model_interval": model["initiation_interval"],
               "model_bottleneck": model["bottleneck"], "multipliers": model["multipliers"],
               "stages": {r["name"]: {"engine": r["cycles_per_input"], "after": r["after_cycles"]}
                          for r in model["layers"]}}
        if not args.no_sim:
            from cosparse.sim.run import simulate

            report = simulate(design, x, config=config, stress=0, progress=False,
                              log=lambda m: print(m, file=sys.stderr))
            s = report["summary"]
            row.update(sim_interval=s["initiation_interval"], bit_exact=s["all_bit_exact"],
                       outputs_checked=s["outputs_checked"],
                       busy_cycles_per_input={e["name"]: e["busy_cycles_per_input"]
                                              for e in s["engines"]},
                       work_cycles_per_input={e["name"]: e["work_cycles_per_input"]
                                              for e in s["engines"]})
            ok = ok and s["all_bit_exact"]
        rows[name] = row
    base, half = rows["as given"], rows["k halved"]
    result = {"netspec": spec.name, "inputs": len(x),
              "config": config.to_dict(spec), "designs": rows,
              "model_ratio": base["model_interval"] / half["model_interval"]}
    if not args.no_sim:
        result["sim_ratio"] = base["sim_interval"] / half["sim_interval"]

    windows = [layer.name for layer, cfg in zip(spec.packed_layers, config.layers)
               if cfg.engine == "window"]
    print(f"{spec.name}: every k-WTA's k halved, same HwConfig ({base['multipliers']:,} "
          f"multipliers; window engine(s) {', '.join(windows) or 'none'} at one pass and "
          f"3-bit search steps in the local k-WTA after it, so that neither binds both "
          f"designs; {args.accumulators} accumulators in the scatter conv engines); "
          f"{len(x)} inputs")
    print(f"{'design':<10} {'model II':>9} {'bottleneck':<13} {'sim II':>8}  k-WTAs")
    for name, row in rows.items():
        sim = f"{row['sim_interval']:>8,.0f}" if "sim_interval" in row else f"{'-':>8}"
        print(f"{name:<10} {row['model_interval']:>9,.0f} {row['model_bottleneck']:<13} {sim}  "
              f"{', '.join(row['k'])}")
    line = f"ratio (as given / k halved): model {result['model_ratio']:.2f}x"
    if "sim_ratio" in result:
        line += f", simulated {result['sim_ratio']:.2f}x"
    print(line + "  (target >= 1.6x)")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
