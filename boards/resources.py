"""``cosparse resources``: out-of-context synthesis per module, summed per instance, full chip.

A whole generated design is too large for a 32-bit WebAssembly Yosys (the
default network's flattened netlist aborted in ``abc9``), so the design is
split into the modules its :class:`~cosparse.hw.top.Network` instantiates:
each engine, each k-WTA / Sparsifier (its requantisers inside the engines),
the argmax, the stream FIFOs and the input Sparsifier. Each is converted on
its own, with its own ports (:func:`split`, :func:`module_netlist`), to
RTLIL, the netlist language Amaranth writes itself and Yosys reads in
seconds (Amaranth's Verilog goes through RTLIL and a Yosys run first, which
took minutes per large engine, and Yosys's Verilog frontend is slow on
large ROMs), and synthesised out of context by
:func:`~.xilinx_synth.synthesise` (``synth_xilinx -family xcup -flatten
-noiopad -noclkbuf -uram``, flattened inside the module only). Identical
modules (the same RTLIL: equal FIFOs, a rerun, a module shared by the
sparse design and its dense baseline) are synthesised once; ``jobs`` Yosys
processes run at once; a module that fails (WebAssembly out of memory, a
Yosys error), runs past ``module_timeout`` or is not done within the run's
``time_limit`` is reported under ``failed`` with the reason, and the sums
say they are incomplete.

The glue between modules: the Network's own level holds no logic, only
stream wiring (``wiring.connect``) and the ``busy`` and ``work`` bits, which
:func:`split` checks (every statement of the top is a plain connection of
signals in the combinational domain); its FIFOs are modules like the others
and are synthesised and counted. So the sum over modules is the whole
design, less what out-of-context synthesis cannot see: logic that
optimisation across module boundaries would remove (a port driven by a
constant, an output nobody reads), so the sums err on the large side.

Per instance: the modules' counts times their instance counts, logic levels
the largest. Full chip: the instances that fit in 80% of a U250
(:func:`~.devices.fit`: the smallest quotient over the resources, which
names the binding one) times the assumed 250 MHz over the initiation
interval of the analytical model (``hw/generate.py`` ``summary``).
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..sim.run import ASSUMED_CLOCK_HZ
from ..sw.cache import cache_root, locked, read_json, write_atomic
from ..sw.netspec import NetSpec
from . import rom_stand_in
from .devices import RESOURCES, XCU250, fit
from .xilinx_synth import SCRIPT, ToolFailed, cached, synthesis_key, synthesise, yosys_version

__all__ = ["ASSUMED_CLOCK_HZ", "FRACTION", "PUBLISHED", "FIELDS", "GLUE",
           "split", "module_netlist", "resource_report", "format_report", "write_report"]

#: Share of the chip a full-chip figure may use (the rest: shell, routing slack).
FRACTION = 0.8

#: Per-instance fields of :func:`resource_report` (the device's resources, logic levels, carry).
FIELDS = RESOURCES + ("carry", "logic_levels")

#: Numenta's published U250 figures for the GSC network (Hunter, Spracklen, Ahmad, "Two
#: Sparsities Are Better Than One", arXiv 2112.13896): inputs/s and instances.
PUBLISHED = {
    "source": "Hunter, Spracklen, Ahmad, Two Sparsities Are Better Than One, arXiv 2112.13896",
    "single": {"dense": 3_049, "sparse": 102_564, "ratio": 33.6},
    "full_chip": {"dense": 12_195, "sparse": 1_369_863, "ratio": 112.3,
                  "dense_instances": 4, "sparse_instances": 20},
}

#: How the glue between modules is counted (in every report).
GLUE = ("the Network's top level holds only stream wiring and the busy and work bits (checked: every "
        "statement is a plain connection); its FIFOs are synthesised as modules and counted")


def _check_wiring(module) -> None:
    """Raise unless the elaborated top ``module`` is nothing but connections of signals."""
    from amaranth.hdl._ast import Assign, Concat, Const, Signal, Slice

    def plain(value):
        if isinstance(value, Slice):
            return plain(value.value)
        if isinstance(value, Concat):
            return all(plain(part) for part in value.parts)
        return isinstance(value, (Signal, Const))

    for domain, statements in module._statements.items():
        for statement in statements:
            if domain != "comb" or not isinstance(statement, Assign) \
                    or not plain(statement.lhs) or not plain(statement.rhs):
                raise ValueError(f"the Network's top level holds logic ({statement!r} in domain "
                                 f"{domain!r}) that per-module synthesis would not count")
    if module._anon_submodules:
        raise ValueError("the Network's top level has unnamed submodules")


def split(network) -> list[tuple[str, object]]:
    """The modules ``network`` instantiates, as ``(instance name, elaboratable)`` in order.

    Elaborates the Network's top level only (its submodules stay
    unelaborated, to be converted one by one) and checks that the top holds
    nothing but wiring (:data:`GLUE`).
    """
    from ..hw.top import Network

    if not isinstance(network, Network):
        raise TypeError(f"network must be a Network, got {type(network).__name__}")
    module = network.elaborate(None)
    # The top is elaborated here, not converted: tell Amaranth it was used on purpose.
    network._MustUse__used = module._MustUse__used = True
    _check_wiring(module)
    return [(name, sub) for name, (sub, *_) in module._named_submodules.items()]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def module_netlist(elaboratable) -> tuple[str, str]:
    """``(top name, RTLIL)`` of one module of a Network, converted on its own.

    The top name is the class's (``ConvEngine`` -> ``conv_engine``), so equal
    modules give equal RTLIL (source locations are left out). A component's
    ports are its signature; a FIFO's its stream handshake (its level
    outputs, unused in the Network, are left out).
    """
    from amaranth.back import rtlil
    from amaranth.lib import wiring
    from amaranth.lib.fifo import FIFOInterface

    top = _snake(type(elaboratable).__name__)
    if isinstance(elaboratable, wiring.Component):
        ports = None
    elif isinstance(elaboratable, FIFOInterface):
        f = elaboratable
        ports = [f.w_data, f.w_en, f.w_rdy, f.r_data, f.r_en, f.r_rdy]
    else:
        raise TypeError(f"cannot convert a {type(elaboratable).__name__} on its own: neither a "
                        f"wiring.Component nor a FIFO")
    return top, rtlil.convert(elaboratable, name=top, ports=ports, emit_src=False)


_BUILT = {}


def _modules(spec: NetSpec, config, dense: bool) -> list[tuple[str, object]]:
    """Worker: :func:`split` of the design, built once per worker process and design."""
    import warnings

    from amaranth._unused import UnusedMustUse

    from ..hw.generate import generate
    from ..sim.build import design_key

    # A worker converts some of the modules; the others (and their parts) stay unused.
    warnings.simplefilter("ignore", UnusedMustUse)
    design = (design_key(spec, config, dense=dense), dense)
    if design not in _BUILT:
        _BUILT.clear()
        _BUILT[design] = split(generate(spec, config, dense=dense))
    return design[0], _BUILT[design]


def _list(spec: NetSpec, config, dense: bool) -> list[tuple[str, str]]:
    """Worker: ``(instance name, class name)`` of each module of the design."""
    return [(name, type(sub).__name__) for name, sub in _modules(spec, config, dense)[1]]


#: The fields of a cached netlist entry (all text); an entry without them is converted again.
_NETLIST_FIELDS = ("name", "module", "top", "rtlil", "stand_in")


def _convert(spec: NetSpec, config, dense: bool, index: int, netlist_cache) -> dict:
    """Worker: the ``index``-th module of the design as RTLIL (cached by design and name)."""
    from amaranth import __version__ as amaranth_version

    design, modules = _modules(spec, config, dense)
    name, elaboratable = modules[index]
    # What decides the text: the design, the module's place, Amaranth, and the converter.
    converter = inspect.getsource(module_netlist) + inspect.getsource(_snake) \
        + inspect.getsource(rom_stand_in)
    key = hashlib.sha256(f"{design}/{dense}/{index}/{name}/{amaranth_version}/{converter}"
                         .encode())
    path = Path(netlist_cache) / f"{key.hexdigest()[:20]}.json"
    start = time.perf_counter()
    with locked(path):
        found, problem = read_json(path)
        if problem is None and isinstance(found, dict) and set(found) == set(_NETLIST_FIELDS) \
                and all(isinstance(found[f], str) for f in _NETLIST_FIELDS):
            found["convert_seconds"], found["converted"] = 0.0, False
            return found
        top, text = module_netlist(elaboratable)
        # Large ROMs get stand-in contents of the same shape (boards/rom_stand_in.py).
        text, replaced = rom_stand_in.stand_in_roms(text)
        found = {"name": name, "module": type(elaboratable).__name__, "top": top, "rtlil": text,
                 "stand_in": "; ".join(replaced)}
        write_atomic(path, json.dumps(found))
    found["convert_seconds"], found["converted"] = time.perf_counter() - start, True
    return found


def _synthesise(item: dict, cache, timeout, log) -> dict:
    """Thread: synthesise one unique module; the outcome, failure included, as a dict."""
    start = time.perf_counter()
    log(f"start {item['name']} ({item['module']}, {len(item['rtlil']) / 1e6:.2f} MB RTLIL)")
    try:
        used = synthesise(item["rtlil"], item["top"], cache=cache, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - reported, the other modules go on
        reason = error.reason if isinstance(error, ToolFailed) else \
            f"{type(error).__name__}: {error}"
        log(f"FAILED {item['name']} after {time.perf_counter() - start:.0f} s: {reason}")
        return {"status": "failed", "reason": str(error), "seconds": time.perf_counter() - start,
                **getattr(error, "usage", {})}
    log(f"done {item['name']} in {used.seconds:.0f} s ({used.cpu_seconds:.0f} s CPU, "
        f"{used.max_rss_mb:,.0f} MB): {used.lut:,} LUT, {used.ff:,} FF, {used.dsp} DSP, "
        f"{used.bram36:g} BRAM36, {used.uram} URAM, {used.logic_levels} levels")
    return {"status": "ok", **used.as_dict()}


def _failed(name: str, kind: str, key: str, reason: str) -> dict:
    return {"name": name, "module": kind, "top": None, "key": key, "rtlil_bytes": None,
            "status": "failed", "reason": reason}


def _synthesise_designs(designs: dict, *, jobs: int, cache, timeout, time_limit, log) -> dict:
    """Convert and synthesise every module of ``designs`` ({label: (spec, config, dense)}).

    Returns {label: [(instance name, module record)]}, one record shared by
    the instances with the same RTLIL. Conversions run in ``jobs`` worker
    processes, syntheses in ``jobs`` Yosys processes, the smallest module
    converted so far first. A module whose conversion or synthesis fails,
    or that is not done within ``time_limit`` seconds of the start (each
    synthesis is given at most the time left), gets a record with status
    "failed" and the reason; conversions still running then are stopped.
    """
    import multiprocessing
    import queue
    from concurrent.futures import ThreadPoolExecutor

    synth_cache = Path(cache) if cache is not None else cache_root() / "synth"
    netlist_cache = synth_cache / "rtlil"
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit

    def note(line):
        log(f"[{time.perf_counter() - start:6.0f} s] {line}")

    events = queue.Queue()
    converters = multiprocessing.get_context("fork").Pool(jobs)
    try:
        with ThreadPoolExecutor(jobs) as synthesisers:
            modules = {label: converters.apply(_list, args) for label, args in designs.items()}
            records, placed = {}, {label: [None] * len(m) for label, m in modules.items()}
            pending = set()
            for label, m in modules.items():
                for index in range(len(m)):
                    pending.add((label, index))
                    converters.apply_async(
                        _convert, (*designs[label], index, str(netlist_cache)),
                        callback=lambda item, at=(label, index): events.put(("rtlil", at, item)),
                        error_callback=lambda e, at=(label, index): events.put(("error", at, e)))
            running, ready = 0, []
            while pending or running or ready:
                left = None if deadline is None else deadline - time.perf_counter()
                # The smallest module waiting goes next, so big ones never hold up the small.
                while ready and running < jobs and (left is None or left > 0):
                    _, _, item, record = heapq.heappop(ready)
                    limit = timeout if left is None else min(timeout or left, left)
                    future = synthesisers.submit(_synthesise, item, synth_cache, limit, note)
                    future.add_done_callback(
                        lambda f, record=record: events.put(("synthesised", record, f.result())))
                    running += 1
                # Past the limit with nothing left to start, the syntheses running stop by
                # their own time limits.
                wait_for = None if left is None or not (pending or ready) else max(0, left)
                try:
                    event, at, outcome = events.get(timeout=wait_for)
                except queue.Empty:  # the time limit: what has not started will not
                    reason = f"not done within the time limit ({time_limit:g} s)"
                    for label, index in pending:
                        name, kind = modules[label][index]
                        placed[label][index] = (name, _failed(name, kind, f"{label}:{name}",
                                                              f"conversion {reason}"))
                        note(f"FAILED {label}:{name} ({kind}): conversion {reason}")
                    for _, _, item, record in ready:
                        record.update(status="failed", reason=f"synthesis {reason}")
                        note(f"FAILED {item['name']} ({item['module']}): synthesis {reason}")
                    pending, ready = set(), []
                    converters.terminate()
                    continue
                if event == "synthesised":
                    at.update(outcome)
                    running -= 1
                    continue
                pending.discard(at)
                label, index = at
                name, kind = modules[label][index]
                if event == "error":
                    reason = f"conversion to RTLIL failed: {type(outcome).__name__}: {outcome}"
                    note(f"FAILED {label}:{name} ({kind}): {reason}")
                    placed[label][index] = (name, _failed(name, kind, f"{label}:{name}", reason))
                    continue
                item = outcome
                if item["converted"]:
                    note(f"converted {label}:{name} ({kind}) to RTLIL in "
                         f"{item['convert_seconds']:.0f} s, {len(item['rtlil']) / 1e6:.2f} MB")
                key = synthesis_key(item["rtlil"], item["top"])
                record = records.get(key)
                if record is None:
                    record = records[key] = {"name": name, "module": kind, "top": item["top"],
                                             "key": key, "rtlil_bytes": len(item["rtlil"]),
                                             "rom_stand_in": item["stand_in"]}
                    hit = cached(item["rtlil"], item["top"], cache=synth_cache)
                    if hit is not None:
                        record.update(status="ok", **hit.as_dict())
                        note(f"cached {label}:{name} ({kind})")
                    else:
                        item["name"] = f"{label}:{name}"
                        heapq.heappush(ready, (len(item["rtlil"]), len(records), item, record))
                placed[label][index] = (name, record)
    finally:
        converters.terminate()
        converters.join()
    return placed


def _rate(spec: NetSpec, config, dense: bool, placed: list) -> dict:
    """One design's block of the report: per module, per instance, full chip."""
    from ..hw.generate import summary

    modules = {}
    for name, record in placed:
        entry = modules.setdefault(record["key"], {
            "name": name, "module": record["module"], "top": record["top"],
            "key": record["key"], "instances": [], "rtlil_bytes": record["rtlil_bytes"],
            "rom_stand_in": record.get("rom_stand_in", ""), "status": record["status"]})
        entry["instances"].append(name)
        entry.update({k: record[k] for k in ("seconds", "cpu_seconds", "max_rss_mb")
                      if k in record})
        if record["status"] == "ok":
            entry.update({f: record[f] for f in FIELDS}, cached=record["cached"],
                         cells=record["cells"], parts=record["parts"])
        else:
            entry["reason"] = record["reason"]
    per_module = list(modules.values())
    for entry in per_module:
        entry["count"] = len(entry["instances"])
    ok = [e for e in per_module if e["status"] == "ok"]
    per_instance = {f: sum(e[f] * e["count"] for e in ok) for f in FIELDS if f != "logic_levels"}
    per_instance["logic_levels"] = max((e["logic_levels"] for e in ok), default=0)
    failed = [{"name": e["name"], "module": e["module"], "instances": e["instances"],
               "reason": e["reason"]} for e in per_module if e["status"] != "ok"]
    model = summary(spec, config, dense=dense)
    interval = model["initiation_interval"]
    block = {"design": "dense" if dense else "sparse", "complete": not failed,
             "failed": failed, "per_instance": per_instance, "per_module": per_module,
             "modules": len(placed), "unique_modules": len(per_module),
             "interval_cycles": interval, "bottleneck": model["bottleneck"],
             "multipliers": model["multipliers"], "clock_hz_assumed": ASSUMED_CLOCK_HZ,
             "inputs_per_s": ASSUMED_CLOCK_HZ / interval}
    if any(per_instance[r] for r in RESOURCES):
        fitted = fit(per_instance, XCU250, FRACTION)
        block.update(instances_u250=fitted["instances"], binding=fitted["binding"],
                     per_resource_u250=fitted["per_resource"])
    else:
        block.update(instances_u250=None, binding=None, per_resource_u250={})
    block["full_chip_inputs_per_s"] = (None if block["instances_u250"] is None
                                       else block["instances_u250"] * block["inputs_per_s"])
    return block


def resource_report(spec: NetSpec, *, config=None, dense: bool = False, baseline: bool = True,
                    jobs: int | None = None, module_timeout: float | None = None,
                    time_limit: float | None = None, cache=None, log=None) -> dict:
    """Synthesise a NetSpec's design module by module and rate it per instance and at full chip.

    ``config`` (an HwConfig, default :meth:`HwConfig.default_for`) is the
    design's; ``dense`` rates the dense baseline instead of the sparse
    design; ``baseline`` (sparse only) adds the dense baseline's block under
    ``dense`` (its own default config) and the ratios sparse/dense per
    instance and at full chip (equal silicon: each design as many times as
    fits). ``jobs`` (default ``os.cpu_count()``) processes convert and
    synthesise at once; ``module_timeout`` seconds stop one module's Yosys;
    ``time_limit`` seconds bound the whole run (modules not done by then are
    reported as failed); ``log`` receives one line per module event. See the
    module docstring.
    """
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    for name, value in (("module_timeout", module_timeout), ("time_limit", time_limit)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    log = log or (lambda line: None)
    start = time.perf_counter()
    designs = {"dense" if dense else "sparse": (spec, config, dense)}
    if baseline and not dense:
        designs["dense"] = (spec, None, True)
    placed = _synthesise_designs(designs, jobs=jobs, cache=cache, timeout=module_timeout,
                                 time_limit=time_limit,
                                 log=lambda line: log(f"resources: {line}"))
    blocks = {label: _rate(*designs[label], placed[label]) for label in designs}
    report = blocks.pop("dense" if dense else "sparse")
    report = {"netspec": spec.name, **report}
    if blocks:
        sparse, base = report, blocks["dense"]
        report["dense"] = base
        full = (sparse["full_chip_inputs_per_s"] / base["full_chip_inputs_per_s"]
                if sparse["full_chip_inputs_per_s"] and base["full_chip_inputs_per_s"] else None)
        report["sparse_over_dense"] = {
            "per_instance": sparse["inputs_per_s"] / base["inputs_per_s"],
            "full_chip": full, "complete": sparse["complete"] and base["complete"]}
    report.update({
        "published": PUBLISHED, "fraction": FRACTION, "device": asdict(XCU250), "glue": GLUE,
        "synthesis": {"script": SCRIPT, "yosys": yosys_version(), "jobs": jobs,
                      "module_timeout_s": module_timeout, "time_limit_s": time_limit,
                      "logic_levels": "ltp longest path; a run of r CARRY4 counts ceil(r/2)"},
        "wall_seconds": time.perf_counter() - start})
    return report


def _table(block: dict) -> str:
    head = ("module", "x", "LUT", "FF", "DSP", "BRAM36", "URAM", "levels", "seconds")
    rows = [head]
    for e in block["per_module"]:
        if e["status"] == "ok":
            rows.append((e["name"], e["count"], f"{e['lut']:,}", f"{e['ff']:,}", e["dsp"],
                         f"{e['bram36']:g}", e["uram"], e["logic_levels"],
                         "cached" if e["cached"] else f"{e['seconds']:.0f}"))
        else:
            rows.append((e["name"], e["count"], "FAILED", "", "", "", "", "", ""))
    p = block["per_instance"]
    rows.append(("per instance", "", f"{p['lut']:,}", f"{p['ff']:,}", p["dsp"],
                 f"{p['bram36']:g}", p["uram"], p["logic_levels"], ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                       for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
    for f in block["failed"]:
        lines.append(f"FAILED {f['name']}: {f['reason'].splitlines()[0]}")
    lines += _breakdown(block)
    clock = block["clock_hz_assumed"] / 1e6
    fits = ("nothing synthesised" if block["instances_u250"] is None else
            f"{block['instances_u250']} per U250 in {FRACTION:.0%} (binding: {block['binding']}), "
            f"{block['full_chip_inputs_per_s']:,.0f} inputs/s full chip")
    lines.append(f"{block['design']}: interval {block['interval_cycles']:,.0f} cycles "
                 f"({block['bottleneck']}), {block['inputs_per_s']:,.0f} inputs/s per instance at "
                 f"{clock:.0f} MHz (assumed); {fits}"
                 + ("" if block["complete"] else "; INCOMPLETE: failed modules not counted"))
    return "\n".join(lines)


def _breakdown(block: dict, share: float = 0.05) -> list[str]:
    """Lines naming, per module holding at least ``share`` of the instance's LUTs, its
    submodules' own LUTs / FFs / DSPs (largest first): where the LUTs go."""
    total = block["per_instance"]["lut"] or 1
    lines = []
    for e in block["per_module"]:
        if e["status"] != "ok" or e["lut"] * e["count"] < share * total or len(e["parts"]) < 2:
            continue
        parts = sorted(e["parts"].items(), key=lambda item: -item[1]["lut"])
        lines.append(f"  {e['name']}: " + ", ".join(
            f"{name or '(own)'} {p['lut']:,} LUT / {p['ff']:,} FF / {p['dsp']} DSP"
            for name, p in parts if p["lut"] or p["ff"] or p["dsp"]))
    return ["where the LUTs go (each submodule's own cells):", *lines] if lines else []


def format_report(report: dict) -> str:
    """The report as text: a table per design, the ratios and the published figures."""
    parts = [_table(report)]
    if "dense" in report:
        parts.append(_table(report["dense"]))
        r, pub = report["sparse_over_dense"], report["published"]
        full = "n/a" if r["full_chip"] is None else f"{r['full_chip']:.1f}x"
        parts.append(f"sparse/dense: {r['per_instance']:.1f}x per instance (published "
                     f"{pub['single']['ratio']}x), {full} at full chip, equal silicon (published "
                     f"{pub['full_chip']['ratio']}x: {pub['full_chip']['sparse_instances']} sparse "
                     f"networks, {pub['full_chip']['sparse']:,} inputs/s, against "
                     f"{pub['full_chip']['dense_instances']} dense, "
                     f"{pub['full_chip']['dense']:,})"
                     + ("" if r["complete"] else "; INCOMPLETE"))
    return "\n\n".join(parts)


def plot(report: dict, path) -> None:
    """Bar charts: percent of one U250 per instance per resource (each design), LUTs per module."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [report] + ([report["dense"]] if "dense" in report else [])
    device = report["device"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(blocks)
    for i, block in enumerate(blocks):
        shares = [100 * block["per_instance"][r] / device[r] for r in RESOURCES]
        label = (f"{block['design']}: {block['instances_u250']} per U250 "
                 f"(binding {block['binding']})" + ("" if block["complete"] else ", incomplete"))
        bars = ax.bar([x + (i - (len(blocks) - 1) / 2) * width for x in range(len(RESOURCES))],
                      shares, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(RESOURCES)), ["LUT", "FF", "DSP48E2", "BRAM36", "URAM"])
    ax.set_ylabel("% of one U250 per instance")
    ax.legend(fontsize=8)
    ax.set_title(f"{report['netspec']}: per-module yosys synth_xilinx -family xcup", fontsize=9)
    names, luts, colours = [], [], []
    for i, block in enumerate(blocks):
        for e in block["per_module"]:
            names.append(f"{block['design']}:{e['name']}" + (f" x{e['count']}"
                                                             if e["count"] > 1 else ""))
            luts.append(e["lut"] * e["count"] if e["status"] == "ok" else 0)
            colours.append(f"C{i}" if e["status"] == "ok" else "red")
    bx.barh(range(len(names)), luts, color=colours)
    bx.set_yticks(range(len(names)), names, fontsize=6)
    bx.invert_yaxis()
    bx.set_xlabel("LUTs per instance (red: failed, not counted)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict, out) -> list[Path]:
    """``out/resources.json`` and ``out/resources.png``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "resources.json", out / "resources.png"]
    paths[0].write_text(json.dumps(report, indent=1))
    plot(report, paths[1])
    return paths


def run_cli(args) -> int:
    """``cosparse resources`` (options registered in cosparse.boards.cli)."""
    from ..sw import inputs

    spec = inputs.load_netspec(args)
    config = inputs.load_hw_config(args, spec)
    log = None if args.no_progress else (lambda line: print(line, file=sys.stderr, flush=True))
    report = resource_report(spec, config=config, dense=args.dense, jobs=args.jobs,
                             module_timeout=args.module_timeout, time_limit=args.time_limit,
                             log=log)
    if args.out:
        written = write_report(report, args.out)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if args.out and not args.json:
        print("wrote " + ", ".join(map(str, written)))
    return 0
