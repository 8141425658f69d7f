"""``simulate`` sharded across the workers of a Dask distributed cluster.

A cycle-accurate run of a data set is one simulator process streaming the
inputs one after another: on the shipped default network about 5 inputs/s
on one core. The inputs are independent (every output is a function of its
own input), so :func:`simulate_sharded` cuts them into contiguous shards,
runs each shard as one :func:`cosparse.sim.run.simulate` call on a Dask
worker, and puts the shards' results back together in input order.

Each worker builds the design, or reuses the build, through the same
content-hashed cache as a serial run (:func:`cosparse.sim.build.build`):
workers that share a cache folder (every worker of a local cluster, or
machines on one network file system) take its lock, so one compiles and the
others wait and reuse it; a worker on a machine of its own builds once for
that machine. The shards check that every worker built the design the
client asked for (the same build key): a worker running another version of
cosparse would simulate another design, and the run stops naming it.

Shards are idempotent: a shard is a pure function of the NetSpec, the
hardware config, its slice of inputs and the options, and it writes only
its own new run folder (``runs/<time>-<pid>-<random>/``) and, under the
cache's lock, the build. So when a worker is lost mid-shard, the
scheduler runs the shard again on another worker (up to
``distributed.scheduler.allowed-failures`` times, 3 by default, then
``KilledWorker``) and the result is the one the lost worker would have
returned; the lost run leaves at most a run folder behind. An exception
raised by a shard (a failed build, a simulator timeout) is not retried: it
would fail again the same way; it ends the run with that error.

What is identical to a serial run: for every input, in input order, the
predicted class, the logits and whether they were bit-exact. What is not:
each shard is a stream of its own, so the cycles of a shard's first inputs
(pipeline fill, ``cycles`` of the shard's first input is its time to first
result) and the steady-state initiation interval (here the mean over the
second half of every shard's stream) can differ slightly; each shard also
runs its first input alone for latency, and the inputs re-streamed with
random gaps and backpressure (``stress``) are the serial run's, each by the
shard that holds it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["SHARD_INPUTS", "require_distributed", "connect", "shard_ranges", "default_shards",
           "run_shard", "simulate_sharded"]

#: Inputs per shard aimed at by :func:`default_shards`: each shard pays a simulator start
#: (process, cocotb, reset) and one input run alone for latency, a few seconds on the
#: default network, against about 0.2 s per input; 64 keeps that under a quarter while a
#: lost worker costs one shard's inputs.
SHARD_INPUTS = 64

_INSTALL = ("Dask distributed is not installed; install it with `pip install 'cosparse[dask]'` "
            "(or `pip install 'dask[distributed]'`) on this machine and on every worker")


def require_distributed():
    """The ``distributed`` module; RuntimeError naming the install command when it is absent."""
    try:
        import distributed
    except ImportError:
        raise RuntimeError(_INSTALL) from None
    return distributed


def shard_ranges(count: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ``(start, stop)`` ranges covering ``range(count)``, sizes within one.

    Contiguous ranges keep the results in input order by concatenation and
    keep the serial run's first inputs (latency, stress) in the first shards.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"need at least one input to shard, got {count!r}")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"the number of shards must be a positive integer, got {shards!r}")
    shards = min(shards, count)
    size, extra = divmod(count, shards)
    bounds = [0]
    for index in range(shards):
        bounds.append(bounds[-1] + size + (index < extra))
    return list(zip(bounds, bounds[1:]))


def default_shards(count: int, workers: int) -> int:
    """Shards for ``count`` inputs on ``workers`` worker threads: about :data:`SHARD_INPUTS`
    inputs each, at least one per worker, a multiple of ``workers`` (they finish together),
    at most one per input."""
    if workers < 1:
        raise ValueError(f"the cluster has no worker threads ({workers}); start workers with "
                         f"`dask worker tcp://HOST:PORT`")
    wanted = max(workers, math.ceil(count / SHARD_INPUTS))
    return min(count, workers * math.ceil(wanted / workers))


def run_shard(spec, x, start: int, options: dict) -> dict:
    """Simulate one shard on a worker: :func:`cosparse.sim.run.simulate` of ``x`` (the inputs
    ``start ..`` of the run) with ``options``; the report and where it ran."""
    from .run import simulate

    worker = None
    try:
        from distributed import get_worker
        worker = get_worker().address
    except (ImportError, ValueError):  # called directly, outside a cluster
        pass
    began = time.perf_counter()
    report = simulate(spec, x, progress=False, log=None, **options)
    return {"start": start, "stop": start + len(x), "report": report, "worker": worker,
            "host": socket.gethostname(), "pid": os.getpid(),
            "wall_seconds": time.perf_counter() - began}


def _identity(value):
    return value


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None, *,
            timeout: float = 60.0):
    """A Dask ``Client``: on ``scheduler`` (``tcp://HOST:PORT``) or on a new local cluster.

    Local: ``workers`` processes (default: one per core this process may
    use) of one thread each, closed on exit; its dashboard, when bokeh is
    installed, on a free port (8787 may be another cluster's). With
    ``scheduler``, ``workers`` is how many workers to wait for (``timeout``
    seconds) before sharding; the user's cluster is left running.
    """
    distributed = require_distributed()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is None:
        import logging
        count = workers or len(os.sched_getaffinity(0))
        with distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                      dashboard_address=":0",
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler} ({error}); start "
                           f"one with `dask scheduler` and workers with `dask worker "
                           f"{scheduler}` (docs/distributed.md)") from None
    with client:
        if workers is not None:
            try:
                client.wait_for_workers(workers, timeout=timeout)
            except TimeoutError:
                have = len(client.scheduler_info()["workers"])
                raise RuntimeError(f"the scheduler at {scheduler} has {have} worker(s), "
                                   f"fewer than --workers {workers} after {timeout:g} s; "
                                   f"start more with `dask worker {scheduler}`") from None
        yield client


def _threads(client) -> int:
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())


def simulate_sharded(client, spec, inputs, *, shards: int | None = None, config=None,
                     simulator: str = "verilator", dense: bool = False,
                     stress: int | None = None, seed: int = 0, timeout: float | None = None,
                     cache=None, log=None) -> dict:
    """:func:`cosparse.sim.run.simulate` of int8 ``inputs`` sharded across ``client``'s workers.

    Parameters
    ----------
    client : distributed.Client
        The cluster (:func:`connect`).
    spec, inputs, config, simulator, dense, seed, timeout
        As :func:`cosparse.sim.run.simulate` (``timeout`` per shard).
    shards : int, optional
        Shards to cut the inputs into (default :func:`default_shards` of the
        cluster's worker threads).
    stress : int, optional
        The first ``stress`` inputs of the run (default 16) are streamed
        again with random gaps and backpressure, each by the shard holding it.
    cache : path, optional
        The build cache, a folder every worker can reach (default: each
        worker's own ``$COSPARSE_CACHE`` or ``~/.cache/cosparse``); the
        merged report is written under it on this machine.
    log : callable, optional
        Hears one line per finished shard.

    Returns
    -------
    dict
        A report of the same form as the serial one (``summary``, ``inputs``
        in input order with run-wide indices, ``mismatches``, ``build``,
        ``report_path``), plus ``shards`` (where each ran) and
        ``summary["sharded"]`` (workers, shards, wall seconds, inputs/s).
        See the module docstring for what equals a serial run.
    """
    from ..sw import golden, progress
    from .build import design_key

    say = log or (lambda message: None)
    x = golden.validate_inputs(spec, inputs)
    n = len(x)
    if n == 0:
        raise ValueError("no inputs to simulate")
    workers = _threads(client)
    count = default_shards(n, workers) if shards is None else shards
    ranges = shard_ranges(n, count)
    stress = min(n, 16) if stress is None else min(n, max(0, stress))
    key = design_key(spec, config, dense=dense, simulator=simulator)
    begun = time.perf_counter()
    # The NetSpec goes to the cluster once, as the result of a task: a lost copy is
    # computed again from the task (scattered data would be gone with its worker).
    spec_future = client.submit(_identity, spec, pure=False)
    futures = {}
    for index, (a, b) in enumerate(ranges):
        options = dict(config=config, simulator=simulator, dense=dense, seed=seed,
                       timeout=timeout, cache=None if cache is None else str(cache),
                       stress=max(0, min(b, stress) - a))
        futures[client.submit(run_shard, spec_future, x[a:b], a, options, pure=False)] = index
    done = {"shards": 0, "inputs": 0}
    results = [None] * len(ranges)
    lock = threading.Lock()

    def detail():
        with lock:
            return f"{done['shards']}/{len(ranges)} shards, {done['inputs']}/{n} inputs"

    distributed = require_distributed()
    from distributed.scheduler import KilledWorker
    label = f"simulate {n} inputs in {len(ranges)} shards on {workers} workers"
    try:
        with progress.stage(label, detail=detail):
            for future in distributed.as_completed(list(futures)):
                index = futures[future]
                try:
                    shard = future.result()  # a shard's exception ends the run here
                except KilledWorker as error:
                    a, b = ranges[index]
                    raise RuntimeError(
                        f"shard {index + 1} (inputs {a}-{b - 1}) lost every worker that ran "
                        f"it ({error}); a worker that dies on every try is often out of "
                        f"memory: see the workers' logs") from None
                results[index] = shard
                with lock:
                    done["shards"] += 1
                    done["inputs"] += shard["stop"] - shard["start"]
                summary = shard["report"]["summary"]
                say(f"shard {index + 1}/{len(ranges)} (inputs {shard['start']}-"
                    f"{shard['stop'] - 1}): {summary['bit_exact']}/{summary['outputs_checked']} "
                    f"bit-exact in {shard['wall_seconds']:.1f} s on "
                    f"{shard['worker'] or shard['host']}"
                    + ("" if summary["build_cached"] else " (built the design)"))
    except BaseException:
        client.cancel(list(futures) + [spec_future])
        raise
    wall = time.perf_counter() - begun
    keys = {(s["report"]["build"]["key"], s["worker"] or s["host"]) for s in results}
    for other, where in keys:
        if other != key:
            raise RuntimeError(f"worker {where} built design {other}, not this machine's "
                               f"{key}: it runs another version of cosparse (or of its "
                               f"hardware sources); install the same one on every worker")
    return _merge(spec, x, results, config=config, dense=dense, wall=wall, workers=workers,
                  key=key, simulator=simulator, cache=cache)


def _steady(report) -> int:
    """Intervals a shard's steady-state initiation interval averaged (sim/bench_network.py)."""
    intervals = len(report["intervals"])
    return intervals - intervals // 2 if intervals >= 3 else intervals


def _merge(spec, x, results, *, config, dense, wall, workers, key, simulator, cache) -> dict:
    """One report, of the serial form, from the shards' reports in input order."""
    from ..hw.generate import summary as hw_summary
    from ..sw.cache import cache_root
    from .run import ASSUMED_CLOCK_HZ

    model = hw_summary(spec, config, dense=dense, inputs=x[:64])  # as the serial run's
    reports = [s["report"] for s in results]
    per_input, mismatches = [], []
    for shard, report in zip(results, reports):
        offset = shard["start"]
        per_input += [dict(r, index=r["index"] + offset) for r in report["inputs"]]
        mismatches += [dict(m, index=m["index"] + offset) for m in report["mismatches"]]
    first = next((r for r in reports if "localisation" in r), None)
    n = len(x)
    sums = {name: sum(r["summary"][name] for r in reports)
            for name in ("outputs_checked", "bit_exact", "stream_bit_exact", "stream_cycles")}
    stream_seconds = sum(r["summary"]["stream_cycles"] / r["summary"]["sim_cycles_per_second"]
                         for r in reports if r["summary"]["sim_cycles_per_second"])
    weights = [(_steady(r), r["summary"]["initiation_interval"]) for r in reports
               if r["summary"]["initiation_interval"]]
    used = sum(w for w, _ in weights)
    ii = sum(w * v for w, v in weights) / used if used else None
    engines = []
    for e, row in enumerate(reports[0]["summary"]["engines"]):
        busy, work = (sum(r["summary"]["engines"][e][f"{kind}_cycles_per_input"]
                          * r["summary"]["inputs"] for r in reports) for kind in ("busy", "work"))
        engines.append({"name": row["name"], "kind": row["kind"],
                        "busy_cycles_per_input": busy / n,
                        "work_cycles_per_input": work / n, "wait_cycles_per_input": (busy - work) / n,
                        "busy_fraction": busy / sums["stream_cycles"] if sums["stream_cycles"]
                        else 0,
                        "model_cycles_per_input": model["layers"][e]["cycles_per_input"]})
    built = [r for r in reports if not r["summary"]["build_cached"]]
    summary = {
        "netspec": spec.name, "dense": dense, "simulator": simulator, "inputs": n,
        "outputs_checked": sums["outputs_checked"], "bit_exact": sums["bit_exact"],
        "all_bit_exact": all(r["summary"]["all_bit_exact"] for r in reports),
        "stream_bit_exact": sums["stream_bit_exact"],
        "tlast_error": any(r["summary"]["tlast_error"] for r in reports),
        "latency_cycles": reports[0]["summary"]["latency_cycles"],
        "initiation_interval": ii,
        "initiation_interval_model": model["initiation_interval"],
        "assumed_clock_hz": ASSUMED_CLOCK_HZ,
        "inputs_per_second_at_clock": ASSUMED_CLOCK_HZ / ii if ii else None,
        "stream_cycles": sums["stream_cycles"],
        "sim_inputs_per_second": n / stream_seconds if stream_seconds else None,
        "sim_cycles_per_second": (sums["stream_cycles"] / stream_seconds if stream_seconds
                                  else None),
        "sim_wall_seconds": wall,
        "build_cached": not built,
        "generate_seconds": sum(r["summary"]["generate_seconds"] for r in built),
        "build_seconds": sum(r["summary"]["build_seconds"] for r in built),
        "engines": engines,
        "sharded": {"workers": workers, "shards": len(results), "builds": len(built),
                    "wall_seconds": wall, "inputs_per_second": n / wall if wall else None},
    }
    report = {"summary": summary, "inputs": per_input, "mismatches": mismatches,
              "build": reports[0]["build"], "key": key,
              "stress_inputs": sum(r["stress_inputs"] for r in reports),
              "shards": [{"start": s["start"], "stop": s["stop"], "worker": s["worker"],
                          "host": s["host"], "pid": s["pid"], "wall_seconds": s["wall_seconds"],
                          "initiation_interval": r["summary"]["initiation_interval"],
                          "build_cached": r["summary"]["build_cached"],
                          "report_path": r["report_path"]} for s, r in zip(results, reports)]}
    if first is not None:
        start = results[reports.index(first)]["start"]
        report["localisation"] = dict(first["localisation"],
                                      input=first["localisation"]["input"] + start)
    runs = Path(cache or cache_root()) / "sim" / "sharded"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-",
                                    dir=runs))
    (run_dir / "summary.json").write_text(json.dumps(report, indent=1))
    report["run_dir"] = str(run_dir)
    report["report_path"] = str(run_dir / "summary.json")
    return report
