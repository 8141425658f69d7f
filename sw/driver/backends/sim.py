"""The ``sim`` backend: the Verilator-built kernel, driven through its AXI ports by cocotb.

``load`` builds ``cosparse_kernel`` for the NetSpec through the cached build
machinery of :mod:`cosparse.sim.build` (``top="kernel"``). Each ``run`` call
starts one simulator process running :mod:`cosparse.sim.bench_kernel`,
which writes every features buffer into an ``AxiRam``, performs the
protocol's register writes with an ``AxiLiteMaster``, polls CTRL for
ap_done and reads the cycle counter, status and results buffer back.

Buffers sit above 4 GiB (the high address words are exercised) and the
features buffer starts 64 bytes past a 4 KiB boundary, so the kernel's
burst splitting is exercised on every run. The clock is the 250 MHz
assumed for UltraScale+ until a vendor timing report exists.

Every wait is bounded in wall-clock time (docs/driver.md, "Timeouts"): each
AXI4-Lite transaction by ``bus_timeout`` seconds, each run's wait for
``ap_done`` by ``timeout`` seconds (default: proportional to the run's
expected cycles, :func:`cosparse.sim.run.default_timeout`), and the
simulator process by the sum of its runs' limits; a kernel that does not
answer raises :class:`KernelTimeout` naming the signal that never came.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from ...netspec import NetSpec
from .. import protocol
from . import RunOutput

__all__ = ["SimBackend", "KernelTimeout", "FEATURES_ADDRESS", "BUS_TIMEOUT_SECONDS"]

#: Wall-clock limit of one AXI4-Lite transaction: the register file answers in a few cycles.
BUS_TIMEOUT_SECONDS = 10.0


class KernelTimeout(RuntimeError):
    """The kernel did not answer within its wall-clock limit; the message names the signal."""


def _check_seconds(name: str, value):
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or not value > 0 or value != value or value == float("inf")):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

#: Device address of the features buffer: above 4 GiB, one beat past a 4 KiB boundary.
FEATURES_ADDRESS = (1 << 32) + 0x1040
_PAGE = 4096


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


class SimBackend:
    """The kernel of ``spec`` simulated cycle-accurately (cocotb + Verilator or Icarus).

    Parameters
    ----------
    spec : NetSpec
    config : HwConfig or None; dense : bool
        As for :class:`cosparse.hw.kernel.top.Kernel`.
    simulator : str
        ``"verilator"`` (default) or ``"icarus"``.
    backpressure : float
        Probability, per cycle and memory channel, of a stall (0 to 0.9).
    seed : int
        Seed of the stalls.
    cache : path or None
        Build cache (default :func:`cosparse.sim.build.cache_root`).
    log : callable or None
        Receives progress lines (build, run).
    timeout : float or None
        Wall-clock seconds a run may wait for ``ap_done`` (default: from the
        run's expected cycles, :func:`cosparse.sim.run.default_timeout`).
    bus_timeout : float
        Wall-clock seconds one AXI4-Lite transaction may take.
    """

    name = "sim"
    clock_assumed = True

    def __init__(self, spec: NetSpec, *, config=None, dense: bool = False,
                 simulator: str = "verilator", backpressure: float = 0.0, seed: int = 0,
                 cache=None, log=None, timeout: float | None = None,
                 bus_timeout: float = BUS_TIMEOUT_SECONDS):
        from ....sim.run import ASSUMED_CLOCK_HZ
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        if not isinstance(backpressure, (int, float)) or not 0 <= backpressure <= 0.9:
            raise ValueError(f"backpressure must be a probability from 0 to 0.9, "
                             f"got {backpressure!r}")
        _check_seconds("timeout", timeout)
        _check_seconds("bus_timeout", bus_timeout)
        self.timeout, self.bus_timeout = timeout, float(bus_timeout)
        self.spec, self.config, self.dense = spec, config, dense
        self.simulator, self.backpressure, self.seed = simulator, float(backpressure), seed
        self.cache, self.log = cache, log or (lambda message: None)
        self.layout = protocol.Layout.of(spec)
        self.clock_hz = ASSUMED_CLOCK_HZ
        self.built = None
        self._interval = None

    def load(self):
        """Build (or reuse) the kernel's simulation; the analytical interval sizes the watchdog."""
        from ....hw.generate import summary
        from ....sim.build import build
        self.built = build(self.spec, self.config, dense=self.dense, simulator=self.simulator,
                           cache=self.cache, log=self.log, top="kernel")
        self.log(("reusing cached build " if self.built.cached else "built ")
                 + str(self.built.directory))
        self._interval = summary(self.spec, self.config, dense=self.dense)["initiation_interval"]

    def _expected_cycles(self, count: int) -> int:
        """Cycles a run of ``count`` inputs should take: intervals, input beats, fill."""
        beats = self.layout.input_stride // protocol.regmap.BEAT_BYTES
        return self._interval * (count + 1) + 3 * beats * count + 5_000

    def _max_cycles(self, count: int) -> int:
        """The simulated-cycle watchdog: twice the expected cycles plus 100,000.

        The analytical interval is within 10% of the measured one
        (docs/simulation.md), so twice it is generous; 20 times it, as
        before, let a kernel that never raised ap_done run for hours on a
        long --throughput run.
        """
        return 2 * self._expected_cycles(count) + 100_000

    def _timeout(self, count: int) -> float:
        """Wall-clock seconds a run of ``count`` inputs may wait for ap_done."""
        from ....sim.run import default_timeout
        return self.timeout if self.timeout is not None else default_timeout(
            self._expected_cycles(count))

    def run(self, buffers, *, reset_after=None) -> list:
        """Run each ``(features buffer, count)`` in turn; a list of :class:`RunOutput`.

        ``reset_after`` (one entry per run, None for a normal run) cuts a run
        with ``ap_rst_n`` that many cycles after its start; that run's entry
        in the list is None.
        """
        if self.built is None:
            raise RuntimeError("the sim backend is not loaded; call load() first")
        reset_after = list(reset_after or [None] * len(buffers))
        if len(reset_after) != len(buffers):
            raise ValueError(f"reset_after has {len(reset_after)} entries for {len(buffers)} runs")
        features_end = max(len(b) for b, _ in buffers) + (FEATURES_ADDRESS % _PAGE)
        results_address = FEATURES_ADDRESS - FEATURES_ADDRESS % _PAGE + _round_up(
            features_end, _PAGE) + _PAGE
        results_end = results_address % (1 << 32) + max(
            self.layout.results_bytes(count) for _, count in buffers)
        runs, arrays = [], {}
        for i, ((buffer, count), cut) in enumerate(zip(buffers, reset_after)):
            if len(buffer) != self.layout.features_bytes(count):
                raise ValueError(f"run {i}: a features buffer of {len(buffer)} bytes does not "
                                 f"hold {count} inputs of {self.layout.input_stride} bytes")
            arrays[f"features_{i}"] = np.asarray(buffer, np.uint8)
            runs.append({"features_address": FEATURES_ADDRESS, "results_address": results_address,
                         "count": int(count), "max_cycles": self._max_cycles(count),
                         "timeout_seconds": self._timeout(count), "reset_after": cut})
        settings = {"bus_timeout_seconds": self.bus_timeout,"input_shape": list(self.layout.input_shape), "classes": self.layout.classes,
                    "memory_size": 1 << max(16, (results_end - 1).bit_length()),
                    "backpressure": self.backpressure, "seed": self.seed, "runs": runs}
        runs_root = self.built.directory / "runs"
        runs_root.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs_root))
        job, results_path = run_dir / "job.npz", run_dir / "results.npz"
        report_path = run_dir / "report.json"
        # the simulator process: every run's limit, its bus transactions, start-up and reset
        limit = sum(r["timeout_seconds"] for r in runs) + 120 + 10 * self.bus_timeout
        try:  # an interrupted or failed run leaves no multi-MB job behind
            np.savez(job, settings=np.array(json.dumps(settings)), **arrays)
            self._simulate(run_dir, {"COSPARSE_KERNEL_JOB": str(job),
                                     "COSPARSE_KERNEL_RESULTS": str(results_path),
                                     "COSPARSE_KERNEL_REPORT": str(report_path)}, limit)
        finally:
            job.unlink(missing_ok=True)
        if not report_path.exists():
            raise RuntimeError(f"the {self.simulator} simulation of the kernel did not finish; "
                               f"see {run_dir / 'sim.log'}")
        report = json.loads(report_path.read_text())
        if isinstance(report, dict):
            results_path.unlink(missing_ok=True)
            raise KernelTimeout(f"{report['error']}; see {run_dir / 'sim.log'}")
        results = np.load(results_path)
        outputs = []
        for i, entry in enumerate(report):
            if entry["reset"]:
                if not entry["busy_when_reset"]:
                    raise RuntimeError(f"run {i} ended before its reset_after cycles: the "
                                       f"reset interrupted nothing")
                outputs.append(None)
                continue
            if not entry["idle_after"]:
                raise RuntimeError(f"run {i}: the kernel raised ap_done but is not idle")
            outputs.append(RunOutput(
                results=results[f"results_{i}"],
                transfer_seconds=entry["transfer_in_seconds"] + entry["transfer_out_seconds"],
                kernel_seconds=entry["kernel_seconds"]))
        return outputs

    def _simulate(self, run_dir: Path, env: dict, limit: float):
        from ....sim.build import SimulationTimeout, get_runner
        runner = get_runner(self.simulator, timeout=limit)
        quiet = logging.getLogger("cocotb")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                runner.test(test_module="cosparse.sim.bench_kernel",
                            hdl_toplevel=self.built.top, hdl_toplevel_lang="verilog",
                            build_dir=self.built.directory / "build", test_dir=run_dir,
                            extra_env=env, log_file=run_dir / "sim.log",
                            results_xml=str(run_dir / "results.xml"))
        except SimulationTimeout:
            raise KernelTimeout(f"the {self.simulator} simulation of the kernel ran past its "
                                f"wall-clock limit of {limit:.0f} s (the kernel never "
                                f"answered, or the simulator hung); see {run_dir / 'sim.log'}"
                                ) from None
        finally:
            quiet.setLevel(level)

    def close(self):
        """Nothing stays open between runs: each run is its own simulator process."""
