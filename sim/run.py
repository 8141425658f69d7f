"""``simulate()``: build the network's Verilog, stream inputs through it, check every output.

One call = golden model + cached build (:mod:`cosparse.sim.build`) + one
cocotb run of :mod:`cosparse.sim.bench_network` in a child simulator
process. The report (a dict, JSON-ready) holds every result, the cycle
figures (latency, steady-state initiation interval, busy cycles per engine,
the analytical model's interval beside them), simulation speed, build
times, and, for any mismatch, which logits differ plus a localisation of
the first diverging layer (:func:`cosparse.sim.bench_engine.localise`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..sw import golden
from ..sw.netspec import NetSpec
from .build import TOP, SimulationTimeout, build, get_runner

__all__ = ["ASSUMED_CLOCK_HZ", "MIN_TIMEOUT_SECONDS", "SIM_CYCLES_PER_SECOND_FLOOR",
           "default_timeout", "simulate"]

#: Clock assumed for inputs/s until a vendor timing report exists (UltraScale+).
ASSUMED_CLOCK_HZ = 250e6
#: Shortest default wall-clock limit of one simulator run: process start, cocotb, reset.
MIN_TIMEOUT_SECONDS = 120.0
#: Simulated cycles per wall-clock second assumed when sizing a default limit: well below the
#: slowest model measured (the default network's kernel, about 30,000 cycles/s on a loaded
#: 2-core machine; docs/driver.md), so a run that is merely slow is not cut.
SIM_CYCLES_PER_SECOND_FLOOR = 2_000


def default_timeout(expected_cycles: float) -> float:
    """Wall-clock limit of a simulator run expected to take ``expected_cycles`` cycles."""
    return MIN_TIMEOUT_SECONDS + expected_cycles / SIM_CYCLES_PER_SECOND_FLOOR


def _watch(path: Path, total: int, stop: threading.Event, enabled: bool):
    if not enabled:
        return
    from tqdm import tqdm
    with tqdm(total=total, unit="input", desc="simulating", leave=False) as bar:
        while not stop.wait(0.5):
            try:
                done = int(path.read_text() or 0)
            except (OSError, ValueError):
                done = bar.n
            bar.update(max(0, done - bar.n))
            bar.refresh()  # the elapsed time moves while the simulator starts up


def simulate(spec: NetSpec, inputs, *, simulator: str = "verilator", dense: bool = False,
             waves: bool = False, progress: bool = True, config=None, stress: int | None = None,
             seed: int = 0, cache=None, localise_mismatches: bool = True, log=None,
             timeout: float | None = None) -> dict:
    """Simulate the generated design of ``spec`` on int8 ``inputs`` ([B, C, H, W] or one input).

    ``stress`` inputs (default: min(B, 16)) are streamed a second time with
    random input gaps and output backpressure. Returns the report dict;
    ``report["summary"]["all_bit_exact"]`` says whether every output of every
    phase matched the golden model. Raises SimulatorMissing (a RuntimeError)
    when the simulator is not installed and RuntimeError when the
    simulation itself fails (the message names the log). ``timeout`` bounds
    the simulator run in wall-clock seconds (default :func:`default_timeout` of
    the analytical cycles); past it the simulator is killed and
    :class:`cosparse.sim.build.SimulationTimeout` (a RuntimeError) is raised.
    """
    from ..hw.generate import summary as hw_summary
    from ..hw.top import plan

    x = golden.validate_inputs(spec, inputs)
    if len(x) == 0:
        raise ValueError("no inputs to simulate")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    say = log or (lambda message: None)
    expected = golden.run(spec, x, keep_activations=False)
    built = build(spec, config, dense=dense, simulator=simulator, waves=waves, cache=cache,
                  log=say)
    say(("reusing cached build " if built.cached else "built ") + str(built.directory))

    # A folder of its own per call, even for calls of one process within one second (the
    # shards a Dask worker runs one after another, threads of one process): the pid names the
    # process, the random tail keeps two calls apart.
    runs = built.directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-",
                                    dir=runs))
    stress = min(len(x), 16) if stress is None else min(len(x), max(0, stress))
    model = hw_summary(spec, config, dense=dense, inputs=x[:64])
    ii_model = model["initiation_interval"]
    size = built.input_size
    settings = {
        "beat_bytes": built.beat_bytes, "classes": built.classes, "engines": built.engines,
        "counter_bits": built.counter_bits, "seed": seed, "stress": stress,
        "gap": 0.2, "backpressure": 0.3, "progress": str(run_dir / "progress"),
        # generous watchdog: 20x the analytical interval plus input time and fill
        "max_cycles_per_input": int(20 * ii_model + 4 * size + 20000 * built.engines),
    }
    job = run_dir / "job.npz"
    np.savez(job, x=x.reshape(len(x), -1), logits=expected.logits, cls=expected.predictions,
             settings=np.array(json.dumps(settings)))
    report_path = run_dir / "report.json"

    if timeout is None:
        timeout = default_timeout(settings["max_cycles_per_input"] / 20 * (1 + len(x) + stress))
    runner = get_runner(simulator, timeout=timeout)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, daemon=True, args=(
        run_dir / "progress", 1 + len(x) + stress, stop, progress))
    watcher.start()
    start = time.perf_counter()
    quiet = logging.getLogger("cocotb")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runner.test(test_module="cosparse.sim.bench_network", hdl_toplevel=TOP,
                        hdl_toplevel_lang="verilog",
                        build_dir=built.directory / "build", test_dir=run_dir,
                        extra_env={"COSPARSE_SIM_JOB": str(job),
                                   "COSPARSE_SIM_REPORT": str(report_path)},
                        waves=waves, log_file=run_dir / "sim.log",
                        results_xml=str(run_dir / "results.xml"))
    except SimulationTimeout as error:
        raise SimulationTimeout(f"the {simulator} simulation did not finish: {error} (pass a "
                                f"larger timeout= if it is merely slow); see "
                                f"{run_dir / 'sim.log'}") from None
    finally:  # an interrupted or failed run leaves no multi-MB job behind
        job.unlink(missing_ok=True)
        quiet.setLevel(level)
        stop.set()
        watcher.join()
    wall = time.perf_counter() - start
    if not report_path.exists():
        raise RuntimeError(f"the {simulator} simulation did not finish (a hang hits the "
                           f"watchdog of {settings['max_cycles_per_input']} cycles per input); "
                           f"see {run_dir / 'sim.log'}")
    raw = json.loads(report_path.read_text())

    stages = plan(spec)
    stream = raw["stream"]
    results = raw["results"]
    per_input = []
    for r in results:
        if r["phase"] != "stream":
            continue
        i = r["index"]
        per_input.append({
            "index": i, "prediction": r["cls"], "expected": int(expected.predictions[i]),
            "bit_exact": r["bit_exact"], "logits": r["logits"],
            "cycles": stream["intervals"][i - 1] if i > 0 else stream["result_cycles"][0]})
    mismatches = []
    for r in results:
        if r["bit_exact"]:
            continue
        i = r["index"]
        want = [int(v) for v in expected.logits[i]]
        mismatches.append({
            "phase": r["phase"], "index": i, "expected_cls": int(expected.predictions[i]),
            "got_cls": r["cls"],
            "differing_logits": [{"class": k, "expected": want[k], "got": r["logits"][k]}
                                 for k in range(len(want)) if want[k] != r["logits"][k]]})
    n = len(x)
    ii = stream["initiation_interval"]
    busy, work = stream["busy_cycles"], stream["work_cycles"]
    engines = []
    for e, stage in enumerate(stages):
        row = model["layers"][e]
        engines.append({"name": stage.layer.name, "kind": stage.layer.kind,
                        "busy_cycles_per_input": busy[e] / n,
                        "busy_fraction": busy[e] / stream["cycles"] if stream["cycles"] else 0,
                        # busy = useful work (multipliers fed) + waiting
                        "work_cycles_per_input": work[e] / n,
                        "wait_cycles_per_input": (busy[e] - work[e]) / n,
                        "model_cycles_per_input": row["cycles_per_input"]})
    exact = sum(1 for r in results if r["bit_exact"])
    summary = {
        "netspec": spec.name, "dense": dense, "simulator": simulator, "inputs": n,
        "outputs_checked": len(results), "bit_exact": exact,
        "all_bit_exact": exact == len(results) and not raw["error"],
        "stream_bit_exact": sum(1 for p in per_input if p["bit_exact"]),
        "tlast_error": bool(raw["error"]),
        "latency_cycles": raw["latency"],
        "initiation_interval": ii,
        "initiation_interval_model": ii_model,
        "assumed_clock_hz": ASSUMED_CLOCK_HZ,
        "inputs_per_second_at_clock": ASSUMED_CLOCK_HZ / ii if ii else None,
        "stream_cycles": stream["cycles"],
        "sim_inputs_per_second": n / stream["seconds"] if stream["seconds"] else None,
        "sim_cycles_per_second": stream["cycles"] / stream["seconds"] if stream["seconds"] else None,
        "sim_wall_seconds": wall,
        "build_cached": built.cached,
        "generate_seconds": built.generate_seconds,
        "build_seconds": built.build_seconds,
        "engines": engines,
    }
    report = {"summary": summary, "inputs": per_input, "mismatches": mismatches,
              "build": built.as_dict(), "run_dir": str(run_dir),
              "stress_inputs": raw["stress_inputs"],
              "intervals": stream["intervals"]}
    if waves:
        report["waves"] = [str(p) for p in sorted(run_dir.glob("*.vcd"))
                           + sorted(run_dir.glob("*.fst"))
                           + sorted((built.directory / "build").glob("*.vcd"))
                           + sorted((built.directory / "build").glob("*.fst"))]
    if mismatches:
        report["localisation"] = _localise(spec, x, mismatches, dense, config,
                                           localise_mismatches)
    (run_dir / "summary.json").write_text(json.dumps(report, indent=1))
    report["report_path"] = str(run_dir / "summary.json")
    return report


def _localise(spec, x, mismatches, dense, config, enabled):
    """First diverging layer of the first mismatching input, replayed engine by engine."""
    first = mismatches[0]["index"]
    out = {"input": first}
    result = golden.run(spec, x[first:first + 1])
    out["golden_nonzero_per_layer"] = {name: int(np.count_nonzero(a))
                                       for name, a in result.activations.items()}
    if not enabled:
        out["first_diverging_layer"] = None
        out["note"] = "localisation disabled"
        return out
    try:
        from .bench_engine import localise
    except ImportError:
        out["first_diverging_layer"] = None
        out["note"] = ("the Network exposes no internal activations and the per-engine replay "
                       "(sim/bench_engine.py) is not built yet; compare the differing logits "
                       "with golden_nonzero_per_layer by hand")
        return out
    try:
        out.update(localise(spec, x[first], config=config, dense=dense,
                            activations=result.activations))
    except Exception as error:  # noqa: BLE001 - a diagnostic must not hide the mismatch
        out["first_diverging_layer"] = None
        out["note"] = f"localisation failed: {type(error).__name__}: {error}"
    return out
