"""Benchmark: where a config's multiplier-cycles go, per layer, and what 70% efficiency needs.

Efficiency is useful MACs / (multipliers x interval) (docs/explore.md). This
splits each packed layer's ``multipliers x interval`` of one config (the
default, or ``--hw-config``) into

* ``useful``: products of a non-zero activation, a packed group and a kernel
  offset that lands on an output (:func:`cosparse.sw.golden.useful_macs`);
* ``issued``: the products the engine's multipliers compute in its work
  cycles (a scatter conv: items x lanes x offsets, off-map offsets and idle
  lanes of a last pass included; a window conv: every window position,
  zero inputs included; a linear engine: items x lanes); ``issued - useful``
  is work wasted inside the engine;
* ``idle``: ``multipliers x interval - issued``, cycles the engine waits on
  the pipeline's slowest stage;

all from the cost model (hw/cost.py, :func:`cosparse.hw.generate.stage_cycles`)
on the default network's first ``--calibration`` shipped samples. It then
prints the interval floor (the slowest data-independent stage of any config
the explorer can pick), the multipliers 70% allows at that floor and at
``--interval``, and, for the conv layer fed position-major (conv2 of the
default), the items per input of a scatter engine that would take the
``B`` beats of one input position together (``B`` input channels times an
offset tile per item; the engine today takes one beat per item, ``B = 1``,
and tiles that divide the kernel only), so the modelled bound of such an
engine can be read before building it:

    python bench/efficiency.py [--hw-config FILE] [--interval 1757] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np


def _engine(stage, index: int, cfg, last: bool) -> str:
    """The engine's name in the breakdown: window, ring (a conv engine with a row window),
    buffered (a conv engine holding the whole map), global (a linear engine before a global
    k-WTA) or linear."""
    from cosparse.hw.top import position_major_input
    from cosparse.sw.netspec import Conv2d
    if isinstance(stage.layer, Conv2d):
        if cfg.engine in ("window", "gather"):
            return cfg.engine
        return "ring" if position_major_input(stage, index) else "buffered"
    return "linear" if last or stage.kwta is None else "global"


def breakdown(prof, config) -> dict:
    """Per packed layer: multipliers, own cycles, useful / issued / idle multiplier-cycles."""
    from cosparse.hw import cost
    from cosparse.sw import golden
    from cosparse.sw.netspec import Conv2d

    c = cost.cycles(prof, config)
    interval = c["interval"]
    stats = {st.name: float(np.mean(st.useful_macs))
             for st in golden.run(prof.spec, prof.x_in[0]).stats}
    rows = []
    for index, (stage, cfg) in enumerate(zip(prof.stages, config.layers)):
        layer = stage.layer
        lc = cost.layer_cycles(prof, index, cfg, config.input_width)
        mults = cfg.multipliers(layer, stage.winners)
        items = float(np.mean(lc["accumulate"]))
        if isinstance(layer, Conv2d) and cfg.engine == "window":
            issued = float(mults * items)  # the walk multiplies every window position
        elif isinstance(layer, Conv2d) and cfg.engine == "gather":
            # The walk multiplies every (offset, winner slot) of every output position.
            chunks = -(-layer.kernel ** 2 // cfg.offsets)
            issued = float(mults * np.prod(layer.out_shape[1:]) * cfg.passes(layer.groups)
                           * chunks)
        elif isinstance(layer, Conv2d):
            issued = items * cfg.lanes * cfg.offsets
        else:
            issued = items * cfg.lanes
        total = mults * interval
        rows.append({"layer": layer.name, "engine": _engine(stage, index, cfg, lc["last"]),
                     "multipliers": mults,
                     "cycles": float(np.mean(lc["cycles"])), "useful": stats[layer.name],
                     "issued": issued, "mult_cycles": total, "idle": total - issued,
                     "utilisation": stats[layer.name] / total})
    return {"interval": interval, "multipliers": c["multipliers"],
            "efficiency": c["efficiency"], "useful": prof.useful_macs, "layers": rows}


def grouped_items(x_in: np.ndarray, layer, beats: int, tile: tuple) -> np.ndarray:
    """Per input: items of a scatter conv taking up to ``beats`` non-zero channels of one input
    position per item, with offset tiles of ``tile = (rows, cols)`` kernel offsets (a last
    tile along an axis may be partial), stride 1: per position ``ceil(channels / beats)``
    times the tiles that hold an offset landing on an output."""
    if layer.stride != 1:
        raise ValueError(f"layer {layer.name!r}: grouped items are modelled at stride 1 only, "
                         f"got stride {layer.stride}")
    k = layer.kernel
    ho, wo = layer.out_shape[1:]
    _, _, h, w = x_in.shape

    def reached(size, out, span):
        counts = []
        for v in range(size):
            lo, hi = max(0, v + layer.padding - (out - 1)), min(k - 1, v + layer.padding)
            counts.append(sum(1 for s in range(0, k, span)
                              if lo <= hi and s <= hi and min(s + span, k) - 1 >= lo))
        return np.array(counts)

    channels = np.count_nonzero(x_in, axis=1)
    per = np.ceil(channels / beats) * reached(h, ho, tile[0])[:, None] \
        * reached(w, wo, tile[1])[None, :]
    return per.sum(axis=(1, 2))


def main(argv=None) -> int:
    from cosparse.hw import cost, explore
    from cosparse.hw.config import HwConfig, load_hw_config
    from cosparse.hw.top import position_major_input
    from cosparse.sw import inputs
    from cosparse.sw.netspec import Conv2d

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw-config", type=Path, help="config to break down (default: the "
                        "default network's default config)")
    parser.add_argument("--interval", type=float, default=1757.0,
                        help="longest interval the 70%% target allows (default 1757)")
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    spec = inputs.load_netspec(types.SimpleNamespace(netspec=None))
    prof = cost.profile(spec, inputs.default_samples().x[:args.calibration])
    default = HwConfig.default_for(spec)
    config = load_hw_config(args.hw_config, spec) if args.hw_config else default
    report = {"config": config.to_dict(spec), **breakdown(prof, config)}
    print(f"interval {report['interval']:.0f}, {report['multipliers']} multipliers, "
          f"efficiency {report['efficiency']:.1%} ({report['useful']:,.0f} useful MACs/input)")
    print(f"{'layer':6} {'engine':8} {'mults':>5} {'cycles':>7} {'useful':>9} {'issued':>9} "
          f"{'idle':>9} {'util':>6}")
    for r in report["layers"]:
        print(f"{r['layer']:6} {r['engine']:8} {r['multipliers']:5d} {r['cycles']:7.0f} "
              f"{r['useful']:9,.0f} {r['issued']:9,.0f} {r['idle']:9,.0f} "
              f"{r['utilisation']:6.1%}")

    # The least multipliers of each layer within a stage time, over the explorer's options.
    budget = cost.parse_budget("LUT=1e12")
    tables = [explore._layer_table(prof, i, explore.layer_options(spec, i, base, default), budget)
              for i, base in enumerate(default.layers)]
    floor = max(float(prof.input_cycles()),
                max(min(row["time"] for row in table) for table in tables))

    def least(limit):
        return [min((row["multipliers"] for row in table if row["time"] <= limit), default=None)
                for table in tables]

    bound = {}
    for limit in (floor, args.interval):
        picks = least(limit)
        allowed = prof.useful_macs / (0.7 * limit)
        bound[f"{limit:.0f}"] = {"least_multipliers": picks, "allowed_at_70": allowed,
                                 "best_efficiency": prof.useful_macs / (sum(picks) * limit)}
        print(f"at interval {limit:.0f}: least multipliers per layer {picks} "
              f"(sum {sum(picks)}), 70% allows {allowed:.0f}; best efficiency "
              f"{prof.useful_macs / (sum(picks) * limit):.1%}")
    report["floor"], report["bound"] = floor, bound

    grouped = []
    for index, stage in enumerate(prof.stages):
        layer = stage.layer
        if not (isinstance(layer, Conv2d) and position_major_input(stage, index)
                and layer.stride == 1 and layer.in_shape[0] > 1):
            continue
        lanes = layer.groups  # one pass
        # The other layers' floor: the input stage and their fastest options.
        rest = max(float(prof.input_cycles()),
                   *(min(row["time"] for row in table)
                     for i, table in enumerate(tables) if i != index))
        useful = float(np.mean(golden_useful(prof, layer)))
        for beats in (1, 2, 4, 8):
            for tile in ((layer.kernel, layer.kernel), (1, layer.kernel), (1, 3), (1, 2),
                         (1, 1)):
                items = float(np.mean(grouped_items(prof.x_in[index], layer, beats, tile)))
                mults = beats * lanes * tile[0] * tile[1]
                interval = max(rest, items)
                others = [m for i, m in enumerate(least(interval)) if i != index]
                eff = prof.useful_macs / ((mults + sum(others)) * interval)
                grouped.append({"layer": layer.name, "beats": beats, "tile": tile,
                                "multipliers": mults, "items": items,
                                "utilisation": useful / (mults * max(items, 1)),
                                "efficiency_at": interval, "efficiency": eff,
                                "within": interval <= args.interval})
                print(f"{layer.name} beats {beats} tile {tile[0]}x{tile[1]}: {mults:4d} "
                      f"multipliers, {items:6.0f} items/input, own utilisation "
                      f"{useful / (mults * max(items, 1)):.1%}, whole design at "
                      f"{interval:.0f} cycles (drain overlapped): {eff:.1%}"
                      f"{'' if interval <= args.interval else ' (interval too long)'}")
    report["grouped"] = grouped
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


def golden_useful(prof, layer) -> np.ndarray:
    """Useful MACs per calibration input of ``layer``."""
    from cosparse.sw import golden

    index = [s.layer for s in prof.stages].index(layer)
    return golden.useful_macs(prof.x_in[index], layer)


if __name__ == "__main__":
    sys.exit(main())
