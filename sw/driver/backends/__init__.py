"""Backends of the driver: each carries the protocol's buffers and register writes to a kernel.

A backend has ``name``, ``clock_hz`` (None where only the run's wall time
can tell it), ``clock_assumed``, ``load()``, ``run(buffers)`` and
``close()``. ``run`` takes a list of ``(features buffer, count)`` pairs,
runs them one after another and returns one :class:`RunOutput` each; the
buffers and registers are those of :mod:`cosparse.sw.driver.protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RunOutput", "BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message names what to install or connect."""


@dataclass
class RunOutput:
    """One run on a kernel: the results buffer as read back, and what it cost.

    ``cycles`` is the kernel's own counter (ap_start to ap_done);
    ``transfer_seconds`` the host's time moving both buffers to and from
    device memory; ``kernel_seconds`` the host's wall time from the first
    register write to ap_done seen.
    """

    results: np.ndarray
    cycles: int
    error: bool
    transfer_seconds: float
    kernel_seconds: float
