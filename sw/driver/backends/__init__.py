"""Backends of the driver: each carries the protocol's buffers to a kernel and back.

A backend has ``name``, ``clock_hz``, ``clock_source`` (where the clock
figure comes from, in words), ``clock_assumed``, ``load()``,
``run(buffers)`` and ``close()``. ``run`` takes a list of ``(features
buffer, count)`` pairs and returns one :class:`RunOutput` each, in order;
the buffers are those of :mod:`cosparse.sw.driver.protocol`, and the
results buffer comes back whole, trailer included, for the driver to
decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RunOutput", "BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message names what to install or connect."""


@dataclass
class RunOutput:
    """One run on a kernel: the results buffer as read back (trailer included), and its times.

    ``transfer_seconds`` is the host's time moving both buffers to and from
    device memory; ``kernel_seconds`` the host's wall time from starting the
    kernel to seeing it done. The kernel's own cycle count and status are
    in the buffer's trailer (:func:`cosparse.sw.driver.protocol.decode_trailer`).
    ``unit`` is the compute unit that ran it (0 where there is one).
    """

    results: np.ndarray
    transfer_seconds: float
    kernel_seconds: float
    unit: int = 0
