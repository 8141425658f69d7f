"""Benchmark: UltraScale+ resources of one packed-layer engine, synthesised on its own.

The whole default network is too big for the WebAssembly Yosys (docs/hardware.md),
so the engine micro-architecture is measured one engine at a time: the engine of
packed layer ``--engine`` (0-based, NetSpec order) is built exactly as the
generator builds it (``HwConfig.default_for``, or ``--lanes``/``--offsets``/``--kind``),
converted to RTLIL with its ports (`cosparse.boards.resources.module_netlist`, as
`cosparse resources` does for every module) and synthesised with
``synth_xilinx -family xcup -flatten -noiopad -noclkbuf -uram``
(cosparse.boards.xilinx_synth; cached by netlist content). Prints LUT, FF, carry,
DSP48E2, BRAM36, URAM, logic levels and the engine's modelled cycles per input.

    python bench/engine_resources.py --random 3 --engine 0
    python bench/engine_resources.py --engine 1          # the default's conv2
    python bench/engine_resources.py --engine 0 --kind scatter --lanes 2   # conv1 as a scatter engine
    python bench/engine_resources.py --netspec DIR --engine 1 [--no-pattern]  # block pattern ids
    python bench/engine_resources.py --engine 2 --dense  # the dense baseline's fc1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def engine_component(spec, config, index):
    """The engine of packed layer ``index`` as the generator builds it."""
    from cosparse.hw.top import engine_for, plan

    return engine_for(plan(spec)[index], config.layers[index], index)


def main(argv=None) -> int:
    from cosparse.boards.resources import module_netlist
    from cosparse.boards.xilinx_synth import synthesise
    from cosparse.hw.config import HwConfig
    from cosparse.hw.generate import summary, unpack_dense
    from cosparse.sw import assets, netspec
    from cosparse.sw.netspec import random_netspec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, metavar="SEED", help="a small random network")
    parser.add_argument("--netspec", metavar="DIR", help="NetSpec (default: shipped model)")
    parser.add_argument("--engine", type=int, default=0, help="packed layer index (default 0)")
    parser.add_argument("--lanes", type=int, help="override the engine's lanes")
    parser.add_argument("--offsets", type=int, help="override the engine's offsets")
    parser.add_argument("--kind", choices=("scatter", "window", "gather"),
                        help="override a conv engine's kind (LayerConfig.engine)")
    parser.add_argument("--no-pattern", action="store_true",
                        help="store one kernel id per slot whatever the NetSpec's pattern (the "
                             "baseline a block pattern's shared ids are measured against)")
    parser.add_argument("--dense", action="store_true",
                        help="the dense baseline's engine (every packed layer unpacked to n = 1, "
                             "HwConfig.default_for(..., dense=True)), as `cosparse resources` "
                             "builds it")
    parser.add_argument("--out", default="build/engine-resources", metavar="DIR")
    parser.add_argument("--cache", metavar="DIR", help="synthesis cache")
    args = parser.parse_args(argv)

    if args.random is not None:
        spec = random_netspec(args.random)
    else:
        spec = netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC,
                                                           "default NetSpec"))
    if args.no_pattern:  # the same kernel ids, stated as unstructured
        spec = dataclasses.replace(spec, layers=tuple(
            dataclasses.replace(layer, pattern="random") if hasattr(layer, "pattern") else layer
            for layer in spec.layers))
    built = unpack_dense(spec) if args.dense else spec
    config = HwConfig.default_for(built, dense=args.dense)
    layers = list(config.layers)
    changes = {k: v for k, v in (("lanes", args.lanes), ("offsets", args.offsets),
                                 ("engine", args.kind)) if v}
    layers[args.engine] = dataclasses.replace(layers[args.engine], **changes)
    config = dataclasses.replace(config, layers=tuple(layers))
    config.validate(built)
    engine = engine_component(built, config, args.engine)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    top, netlist = module_netlist(engine)
    suffix = ("-nopattern" if args.no_pattern else "") + ("-dense" if args.dense else "")
    path = out / f"{top}{args.engine}{suffix}.il"
    path.write_text(netlist)
    start = time.perf_counter()
    used = synthesise(netlist, top, cache=args.cache,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    row = summary(spec, config, dense=args.dense)["layers"][args.engine]
    report = {"engine": row["name"], "kind": row["engine"], "lanes": row["lanes"],
              "dense": args.dense,
              "pattern": built.layers[[l.name for l in built.layers].index(row["name"])].pattern,
              "weight_memory_bits": row["weight_memory_bits"],
              "offsets": row["offsets"], "multipliers": row["multipliers"],
              "passes": row["passes"], "cycles_per_input": row["cycles_per_input"],
              "rtlil_mb": path.stat().st_size / 1e6,
              "seconds": time.perf_counter() - start, **used.as_dict()}
    report.pop("cells")
    (out / f"{path.stem}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
