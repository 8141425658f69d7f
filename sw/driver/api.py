"""The driver's one API over every backend: open, load, infer a batch, stream clips, throughput.

``open_device(backend, netspec)`` returns a :class:`Driver`. The driver
packs features and unpacks results with :mod:`cosparse.sw.driver.protocol`
and hands the backend nothing but buffers and counts, so the simulated
kernel and a real card are driven byte for byte alike. Host-side time
(packing, transfers, unpacking) is measured apart from kernel time; kernel
cycles come from the kernel's own counter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import golden
from ..netspec import NetSpec
from . import protocol

__all__ = ["BACKENDS", "Inference", "Driver", "open_device"]

BACKENDS = ("sim", "xrt")


@dataclass
class Inference:
    """Results of one batch: predictions, int32 logits, kernel cycles and host times.

    ``cycles`` is read from the kernel's trailer; a batch shared by several
    compute units reports its slowest share (``unit_cycles`` lists each).
    ``bit_exact`` is whether every logit and prediction equals the golden
    model's (None when not checked).
    """

    predictions: np.ndarray
    logits: np.ndarray
    cycles: int
    seconds: dict = field(default_factory=dict)
    bit_exact: bool | None = None
    unit_cycles: list = field(default_factory=list)


class Driver:
    """A loaded kernel of one NetSpec behind a backend.

    Parameters
    ----------
    spec : NetSpec
    backend : object
        A backend of :mod:`cosparse.sw.driver.backends`.
    check : bool
        Compare every result with the golden model (:mod:`cosparse.sw.golden`).
    """

    def __init__(self, spec: NetSpec, backend, *, check: bool = True):
        self.spec, self.backend, self.check = spec, backend, check
        self.layout = protocol.Layout.of(spec)
        self.loaded = False

    def load(self):
        """Build or program the kernel (sim: Verilator build, cached; xrt: the xclbin)."""
        self.backend.load()
        self.loaded = True
        return self

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, batches, **options):
        """Pack, run and unpack each batch; one :class:`Inference` each (None for a cut run).

        A batch is split into one contiguous share per compute unit of the
        backend (``backend.units``, 1 where absent), so every unit works on
        it at once; the shares' results are joined back in order.
        """
        if not self.loaded:
            self.load()
        units = max(1, int(getattr(self.backend, "units", 1)))
        jobs, pack_seconds, shares = [], [], []
        batches = [golden.validate_inputs(self.spec, x) for x in batches]  # (C, H, W): one
        for x in batches:
            start = time.perf_counter()
            parts = [protocol.pack_features(self.spec, part)
                     for part in np.array_split(x, max(1, min(units, len(x))))]
            pack_seconds.append(time.perf_counter() - start)
            shares.append(len(parts))
            jobs += [(b, len(b) // self.layout.input_stride) for b in parts]
        outputs = iter(self.backend.run(jobs, **options))
        jobs = iter(jobs)
        return [self._join(x, [(next(jobs)[1], next(outputs)) for _ in range(n)], packing)
                for x, n, packing in zip(batches, shares, pack_seconds)]

    def _join(self, x, runs, packing):
        """The :class:`Inference` of a batch from its shares' ``(count, RunOutput)``."""
        if any(out is None for _, out in runs):
            return None
        start = time.perf_counter()
        logits, predictions, cycles = [], [], []
        for count, out in runs:
            trailer = protocol.decode_trailer(self.layout, out.results, count)
            protocol.check_fingerprint(self.spec, trailer)
            if trailer.error:
                raise RuntimeError(f"the kernel reported an error (status bit 0) on a run of "
                                   f"{count} inputs: a memory access failed or a frame was "
                                   f"malformed")
            share_logits, share_predictions = protocol.unpack_results(self.layout, out.results,
                                                                      count)
            logits.append(share_logits)
            predictions.append(share_predictions)
            cycles.append(trailer.cycles)
        logits, predictions = np.concatenate(logits), np.concatenate(predictions)
        unpacking = time.perf_counter() - start
        # The shares run side by side: the batch takes as long as its slowest share.
        inference = Inference(predictions, logits, max(cycles), {
            "pack": packing, "transfer": sum(out.transfer_seconds for _, out in runs),
            "kernel": max(out.kernel_seconds for _, out in runs), "unpack": unpacking},
            unit_cycles=cycles)
        if self.check:
            expected = golden.run(self.spec, x, keep_activations=False)
            inference.bit_exact = bool(np.array_equal(expected.logits, logits)
                                       and np.array_equal(expected.predictions, predictions))
        return inference

    def infer(self, batch) -> Inference:
        """Run a batch of int8 features (``(B, C, H, W)`` or one ``(C, H, W)``)."""
        return self._run([batch])[0]

    def stream(self, clips, *, batch: int = 16):
        """Yield ``(clip, prediction, logits)`` for each clip, run ``batch`` clips at a time.

        A clip is a wav path (features are computed as ``cosparse golden``
        does) or one input's int8 features ``(C, H, W)``.
        """
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        pending = []

        def flush():
            paths = [Path(c) for c in pending if isinstance(c, (str, Path))]
            computed = iter([])
            if paths:
                from ..features import features_batch, normalisation_of
                computed = iter(features_batch(
                    paths, normalisation=normalisation_of(self.spec.input.quant)))
            x = np.stack([next(computed) if isinstance(c, (str, Path)) else np.asarray(c)
                          for c in pending])
            result = self.infer(x)
            if result.bit_exact is False:
                raise RuntimeError("the kernel's results differ from the golden model's")
            out = list(zip(pending, result.predictions.tolist(), result.logits))
            pending.clear()
            return out

        for clip in clips:
            pending.append(clip)
            if len(pending) == batch:
                yield from flush()
        if pending:
            yield from flush()

    def throughput(self, n: int = 50, inputs=None, *, seed: int = 0) -> dict:
        """Run one input alone (latency), then ``n`` back to back; report rates and times.

        ``inputs`` (default: random feature codes of the NetSpec's range) are
        repeated to ``n``. Kernel figures come from the kernel's cycle
        counter at ``clock_hz`` (sim: the assumed 250 MHz; xrt: the clock
        read from the xclbin or the device); host figures are wall times.
        With several compute units, see :mod:`cosparse.sw.driver.throughput`.
        """
        from ..netspec import random_inputs
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        x = random_inputs(self.spec, n, seed=seed) if inputs is None else np.asarray(inputs)
        x = golden.validate_inputs(self.spec, x)
        x = np.resize(x, (n, *x.shape[1:]))
        alone, full = self._run([x[:1], x])
        seconds = {k: full.seconds[k] for k in ("pack", "transfer", "kernel", "unpack")}
        wall = sum(seconds.values())
        clock = self.backend.clock_hz
        if not clock:
            raise RuntimeError(f"the {self.backend.name} backend knows no kernel clock, so "
                               f"cycles cannot be turned into times")
        marginal = (full.cycles - alone.cycles) / (n - 1) if n > 1 else None
        return {
            "backend": self.backend.name, "netspec": self.spec.name, "inputs": n,
            "bit_exact": None if full.bit_exact is None else bool(full.bit_exact
                                                                  and alone.bit_exact),
            "clock_hz": clock, "clock_assumed": self.backend.clock_assumed,
            "kernel_cycles": full.cycles, "cycles_per_input": full.cycles / n,
            "marginal_cycles_per_input": marginal,
            "latency_cycles": alone.cycles, "latency_seconds": alone.cycles / clock,
            "inputs_per_second": n * clock / full.cycles,
            "host_seconds": seconds,
            "host_inputs_per_second": n / wall if wall else None,
        }


def open_device(backend: str = "sim", netspec=None, *, load: bool = True, check=None,
                **options) -> Driver:
    """A :class:`Driver` for ``netspec`` (a NetSpec, a folder, or None: the shipped default).

    ``backend`` is ``"sim"`` (options of :class:`.backends.sim.SimBackend`)
    or ``"xrt"`` (options of :class:`.backends.xrt.XrtBackend`, ``xclbin``
    required). ``check`` (default: on for sim, off for xrt) compares every
    result with the golden model. ``load`` builds or programs the kernel now.
    """
    from .. import assets
    from .. import netspec as netspec_module
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if netspec is None:
        netspec = assets.require(assets.DEFAULT_NETSPEC, "default NetSpec")
    spec = netspec if isinstance(netspec, NetSpec) else netspec_module.load(netspec)
    if backend == "sim":
        from .backends.sim import SimBackend
        chosen = SimBackend(spec, **options)
    else:
        from .backends.xrt import XrtBackend
        chosen = XrtBackend(spec, **options)
    driver = Driver(spec, chosen, check=(backend == "sim") if check is None else bool(check))
    return driver.load() if load else driver
