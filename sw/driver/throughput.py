"""``cosparse throughput``: inputs/s, latency and the analytic bound of a loaded kernel.

The measurement (:func:`measure`) runs ``repeat`` batches of ``batch``
inputs back to back (each batch shared by all compute units), and
``latency_runs`` single inputs. Every figure is taken apart:

- **device** figures come from the kernel's own cycle counter (the trailer)
  at the backend's clock, read from the xclbin or the device on a card
  (the sim backend states the clock it assumes);
- **host** figures are wall times: packing, transfers (buffer writes,
  syncs, reads), the kernel's wall time as the host sees it (start to
  completion), unpacking;
- the **analytic** bound is ``units * clock / II``, II being the network's
  initiation interval from the generator's summary; the achieved fraction
  is the device rate over it (the pipeline's fill lowers it for small
  batches).
"""

from __future__ import annotations

import time

import numpy as np

from .. import golden

__all__ = ["measure", "format_report"]


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _percentiles(values) -> dict:
    values = np.asarray(values, float)
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def measure(driver, *, batch: int = 64, repeat: int = 3, latency_runs: int = 5, inputs=None,
            seed: int = 0) -> dict:
    """Throughput and latency of ``driver``'s kernel; see the module's docstring.

    ``inputs`` (default: random feature codes of the NetSpec's range,
    ``seed``) are repeated to fill the batches.
    """
    from ...hw.generate import summary
    from ..netspec import random_inputs
    for name, value in (("batch", batch), ("repeat", repeat), ("latency_runs", latency_runs)):
        _positive(name, value)
    spec, backend = driver.spec, driver.backend
    if not driver.loaded:
        driver.load()
    clock = backend.clock_hz
    if not clock:
        raise RuntimeError(f"the {backend.name} backend knows no kernel clock; cycles cannot "
                           f"be turned into times")
    x = random_inputs(spec, batch, seed=seed) if inputs is None else np.asarray(inputs)
    x = golden.validate_inputs(spec, x)
    x = np.resize(x, (batch, *x.shape[1:]))
    units = max(1, int(getattr(backend, "units", 1)))

    start = time.perf_counter()
    singles = driver._run([x[i % batch:i % batch + 1] for i in range(latency_runs)])
    single_wall = (time.perf_counter() - start) / latency_runs
    start = time.perf_counter()
    batches = driver._run([x] * repeat)
    wall = time.perf_counter() - start

    device_seconds = [b.cycles / clock for b in batches]
    host = {k: sum(b.seconds[k] for b in batches) for k in ("pack", "transfer", "kernel",
                                                             "unpack")}
    interval = summary(spec)["initiation_interval"]
    ideal = units * clock / interval
    rate = batch * repeat / sum(device_seconds)
    checked = [r.bit_exact for r in singles + batches]
    return {
        "backend": backend.name, "netspec": spec.name, "units": units, "batch": batch,
        "repeat": repeat, "inputs": batch * repeat,
        "clock_hz": clock, "clock_assumed": backend.clock_assumed,
        "clock_source": getattr(backend, "clock_source", None) or (
            "assumed: the simulation's clock, no timing report" if backend.clock_assumed
            else "the backend"),
        "inputs_per_second": rate,
        "batch_cycles": [b.cycles for b in batches],
        "device_seconds": sum(device_seconds),
        "latency": {
            "cycles": _percentiles([s.cycles for s in singles]),
            "device_us": _percentiles([1e6 * s.cycles / clock for s in singles]),
            "host_ms": _percentiles([1e3 * sum(s.seconds.values()) for s in singles]),
            "host_ms_mean_with_driver": 1e3 * single_wall},
        "host_seconds": host,
        "host_wall_seconds": wall,
        "host_inputs_per_second": batch * repeat / wall,
        "analytic": {"initiation_interval": interval, "inputs_per_second": ideal,
                     "achieved_fraction": rate / ideal},
        "bit_exact": None if any(c is None for c in checked) else all(checked),
    }


def format_report(r: dict) -> list:
    """The lines ``cosparse throughput`` prints for a :func:`measure` report."""
    lat, host, a = r["latency"], r["host_seconds"], r["analytic"]
    clock = f"{r['clock_hz'] / 1e6:g} MHz ({r['clock_source']})"
    lines = [
        f"throughput ({r['backend']}, {r['units']} compute unit(s), {r['repeat']} batches of "
        f"{r['batch']}): {r['inputs_per_second']:,.0f} inputs/s on the device at {clock}",
        f"analytic bound: {a['inputs_per_second']:,.0f} inputs/s ({r['units']} x clock / II "
        f"{a['initiation_interval']:,}); achieved {100 * a['achieved_fraction']:.1f}%",
        f"latency of one input: device {lat['device_us']['p50']:,.1f} us p50 / "
        f"{lat['device_us']['p99']:,.1f} us p99 ({lat['cycles']['p50']:,.0f} cycles); host "
        f"round trip {lat['host_ms']['p50']:,.2f} ms p50 / {lat['host_ms']['p99']:,.2f} ms p99",
        f"host, all batches: pack {1e3 * host['pack']:.2f} ms, transfers "
        f"{1e3 * host['transfer']:.2f} ms, kernel (host view) {host['kernel']:.3f} s, unpack "
        f"{1e3 * host['unpack']:.2f} ms; {r['host_inputs_per_second']:,.1f} inputs/s end to end "
        f"vs {r['device_seconds']:.6f} s on the device",
    ]
    if r["bit_exact"] is not None:
        lines.append(f"bit-exact with the golden model: {'yes' if r['bit_exact'] else 'NO'}")
    return lines
