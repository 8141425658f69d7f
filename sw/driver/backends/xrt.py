"""The ``xrt`` backend: the kernel on an Alveo card, through XRT's Python bindings (pyxrt).

pyxrt ships with XRT (``/opt/xilinx/xrt/python``; ``source
/opt/xilinx/xrt/setup.sh`` puts it on ``PYTHONPATH``), not with PyPI, so it
is imported only when this backend is loaded, and its absence, or the
absence of a card, is one clear error.

The kernel is opened with exclusive access so the host can write its
registers itself: the backend performs exactly the register writes and
reads of :mod:`cosparse.sw.driver.protocol` (the same as the sim backend),
with buffers allocated in the memory bank the xclbin connects
``m_axi_gmem`` to. Device buffers are page aligned, which meets the
protocol's alignment rules.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...netspec import NetSpec
from .. import protocol
from . import BackendUnavailable, RunOutput

__all__ = ["XrtBackend", "import_pyxrt"]

#: Seconds to wait for ap_done before giving up on a run.
TIMEOUT_SECONDS = 60.0

_INSTALL = ("the xrt backend needs XRT's Python bindings (pyxrt), which come with XRT, not "
            "PyPI: install XRT and the card's platform (https://xilinx.github.io/XRT), then "
            "`source /opt/xilinx/xrt/setup.sh`")


def import_pyxrt():
    """The ``pyxrt`` module, or BackendUnavailable saying how to get it."""
    try:
        import pyxrt
    except ImportError as error:
        raise BackendUnavailable(f"{_INSTALL} ({error})") from None
    return pyxrt


class XrtBackend:
    """The kernel ``cosparse_kernel`` of an xclbin, on device ``device`` (an index or BDF).

    Parameters
    ----------
    spec : NetSpec
        The network the xclbin was built from (it decides the buffer layout).
    xclbin : path
        The linked xclbin holding ``cosparse_kernel``.
    device : int or str
        XRT device index or PCIe BDF (default 0).
    kernel : str
        Kernel (compute unit) name.
    """

    name = "xrt"
    clock_assumed = False
    clock_hz = None  # implied by each run's cycle counter and wall time

    def __init__(self, spec: NetSpec, *, xclbin=None, device=0, kernel: str = "cosparse_kernel"):
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        if xclbin is None:
            raise ValueError("the xrt backend needs the kernel's xclbin (--xclbin FILE)")
        self.spec, self.xclbin, self.device_id, self.kernel_name = spec, Path(xclbin), device, kernel
        self.layout = protocol.Layout.of(spec)
        self._xrt = self._device = self._kernel = None

    def load(self):
        """Open the device, load the xclbin and open the kernel for register access."""
        xrt = import_pyxrt()
        if not self.xclbin.exists():
            raise FileNotFoundError(f"xclbin {self.xclbin} not found")
        try:
            device = xrt.device(self.device_id)
        except RuntimeError as error:
            raise BackendUnavailable(f"no XRT device {self.device_id!r} found ({error}); check "
                                     f"`xbutil examine`") from None
        uuid = device.load_xclbin(str(self.xclbin))
        self._kernel = xrt.kernel(device, uuid, self.kernel_name,
                                  xrt.kernel.cu_access_mode.exclusive)
        self._xrt, self._device = xrt, device

    def _buffer(self, size: int):
        return self._xrt.bo(self._device, size, self._xrt.bo.normal, self._kernel.group_id(0))

    def run(self, buffers) -> list:
        """Run each ``(features buffer, count)`` in turn, polling CTRL for ap_done."""
        if self._kernel is None:
            raise RuntimeError("the xrt backend is not loaded; call load() first")
        xrt, kernel = self._xrt, self._kernel
        outputs = []
        for features, count in buffers:
            results_size = self.layout.results_bytes(count)
            source, sink = self._buffer(len(features)), self._buffer(results_size)
            t0 = time.perf_counter()
            source.write(np.ascontiguousarray(features, np.uint8), 0)
            source.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(features), 0)
            t1 = time.perf_counter()
            for offset, value in protocol.start_writes(self.layout, source.address(),
                                                       sink.address(), count):
                kernel.write_register(offset, value)
            while not protocol.is_done(kernel.read_register(protocol.CTRL)):
                if time.perf_counter() - t1 > TIMEOUT_SECONDS:
                    raise RuntimeError(f"no ap_done from {self.kernel_name} within "
                                       f"{TIMEOUT_SECONDS:.0f} s")
            cycles, error = protocol.decode_completion(
                [kernel.read_register(offset) for offset in protocol.COMPLETION_READS])
            t2 = time.perf_counter()
            sink.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, results_size, 0)
            results = np.asarray(sink.read(results_size, 0)).view(np.uint8)
            t3 = time.perf_counter()
            outputs.append(RunOutput(results=results, cycles=cycles, error=error,
                                     transfer_seconds=(t1 - t0) + (t3 - t2),
                                     kernel_seconds=t2 - t1))
        return outputs

    def close(self):
        self._kernel = self._device = None
