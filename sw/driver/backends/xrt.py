"""The ``xrt`` backend: the kernel's compute units on an Alveo card, through XRT's pyxrt.

pyxrt ships with XRT (``/opt/xilinx/xrt/python``; ``source
/opt/xilinx/xrt/setup.sh`` puts it on ``PYTHONPATH``), not with PyPI, so it
is imported only when this backend is loaded, and its absence, or the
absence of a card, is one clear error.

Only what pyxrt binds is used (the names are listed, per XRT release, in
``tests/xrt/pyxrt_surface.py``, which the test double is checked against):
``device``, ``xclbin`` and ``load_xclbin``, ``hw_context`` where the
installed XRT has it, ``kernel`` (one per compute unit, opened by the name
``cosparse_kernel:{cosparse_kernel_N}``), ``kernel.group_id``, ``bo``,
``bo.write`` / ``sync`` / ``read`` / ``address``, the kernel called with
its arguments (``run = kernel(features, results, count)``, XRT writes the
argument registers and sets ap_start) and ``run.wait(timeout_ms)`` checked
against ``ert_cmd_state``. pyxrt cannot read or write registers (not bound
since XRT 2021.2), so the kernel reports cycles, status and its NetSpec
fingerprint in the trailer after the results (:mod:`..protocol`).

Each compute unit has its own pair of buffers per batch size, allocated
once in the memory bank the xclbin connects that unit's ``m_axi_gmem`` to
(``kernel.group_id``) and reused. :meth:`XrtBackend.run` deals runs to the
units in turn, one in flight per unit, so all units work at once, and
returns the outputs in the order of the runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ...netspec import NetSpec
from .. import protocol
from . import BackendUnavailable, RunOutput

__all__ = ["XrtBackend", "KernelTimeout", "import_pyxrt", "unit_name", "xclbin_clock_mhz",
           "TIMEOUT_SECONDS", "MAX_UNITS"]

#: Seconds to wait for a run's completion before giving up on it.
TIMEOUT_SECONDS = 60.0
#: Compute units looked for in an xclbin (a U250 holds far fewer of this kernel).
MAX_UNITS = 64
#: The kernel's name in its xclbin (boards.vitis.KERNEL).
KERNEL = "cosparse_kernel"

_INSTALL = ("the xrt backend needs XRT's Python bindings (pyxrt), which come with XRT, not "
            "PyPI: install XRT and the card's platform (https://xilinx.github.io/XRT), then "
            "`source /opt/xilinx/xrt/setup.sh`; pyxrt is built for the distribution's Python "
            "(docs/driver.md: 'XRT, OS and Python')")


class KernelTimeout(RuntimeError):
    """A compute unit did not complete a run within the timeout."""


def import_pyxrt():
    """The ``pyxrt`` module, or BackendUnavailable saying how to get it."""
    try:
        import pyxrt
    except ImportError as error:
        raise BackendUnavailable(f"{_INSTALL} ({error})") from None
    return pyxrt


def unit_name(kernel: str, index: int) -> str:
    """XRT's name of compute unit ``index`` (from 1) as ``cosparse build`` links them."""
    return f"{kernel}_{index}"


def xclbin_clock_mhz(xclbin) -> float | None:
    """The data (kernel) clock an xclbin was linked for, from ``xclbinutil``; None without it.

    ``xclbinutil`` (installed with XRT) dumps the xclbin's
    ``CLOCK_FREQ_TOPOLOGY`` section as JSON; the clock of type ``DATA`` is
    the one driving ``ap_clk`` of the compute units on Alveo platforms.
    """
    tool = shutil.which("xclbinutil")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "clocks.json"
        result = subprocess.run([tool, "--input", str(xclbin), "--dump-section",
                                 f"CLOCK_FREQ_TOPOLOGY:JSON:{out}", "--force"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or not out.exists():
            return None
        return clock_from_topology(json.loads(out.read_text()))


def clock_from_topology(doc: dict) -> float | None:
    """The ``DATA`` clock (MHz) of a dumped ``CLOCK_FREQ_TOPOLOGY`` section, or None."""
    clocks = doc.get("clock_freq_topology", {}).get("m_clock_freq", [])
    data = [float(c["m_freq_Mhz"]) for c in clocks if c.get("m_type") == "DATA"]
    return data[0] if data else None


class _Unit:
    """One compute unit: its kernel object and its buffers, by batch size."""

    def __init__(self, index: int, name: str, kernel):
        self.index, self.name, self.kernel = index, name, kernel
        self.buffers = {}


class XrtBackend:
    """The compute units of ``cosparse_kernel`` in an xclbin, on device ``device``.

    Parameters
    ----------
    spec : NetSpec
        The network the xclbin was built from (it decides the buffer layout;
        each run's trailer proves it).
    xclbin : path
        The linked xclbin holding ``cosparse_kernel``.
    device : int or str
        XRT device index or PCIe BDF (default 0).
    kernel : str
        Kernel name in the xclbin.
    instances : int or None
        Compute units to use (default: every one the xclbin holds).
    timeout : float
        Seconds to wait for one run.
    pyxrt : module or None
        The binding to use (default: ``import pyxrt``); the tests pass a
        double.
    xrt_python : str or None
        A Python (3.8 or later) that imports pyxrt, when this one cannot:
        pyxrt is then driven through the process bridge
        (:mod:`cosparse.sw.driver.bridge`), started on :meth:`load` and
        ended on :meth:`close`.
    """

    name = "xrt"
    clock_assumed = False

    def __init__(self, spec: NetSpec, *, xclbin=None, device=0, kernel: str = KERNEL,
                 instances: int | None = None, timeout: float = TIMEOUT_SECONDS, pyxrt=None,
                 xrt_python: str | None = None):
        if not isinstance(spec, NetSpec):
            raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
        if xclbin is None:
            raise ValueError("the xrt backend needs the kernel's xclbin (--xclbin FILE)")
        if instances is not None and (not isinstance(instances, int) or isinstance(
                instances, bool) or not 1 <= instances <= MAX_UNITS):
            raise ValueError(f"instances must be an integer from 1 to {MAX_UNITS}, "
                             f"got {instances!r}")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.spec, self.xclbin, self.device_id = spec, Path(xclbin), device
        self.kernel_name, self.instances, self.timeout = kernel, instances, float(timeout)
        self.layout = protocol.Layout.of(spec)
        self.clock_hz, self.clock_source = None, None
        self._xrt, self._device, self._units = pyxrt, None, []
        self.xrt_python, self._bridge = xrt_python, None

    @property
    def units(self) -> int:
        """Compute units in use (0 before :meth:`load`)."""
        return len(self._units)

    def load(self):
        """Open the device, load the xclbin, open its compute units and read the clock."""
        if self._xrt is not None:
            xrt = self._xrt
        elif self.xrt_python is not None:
            from ..bridge import connect
            xrt = self._bridge = connect(self.xrt_python)
        else:
            xrt = import_pyxrt()
        if not self.xclbin.exists():
            raise FileNotFoundError(f"xclbin {self.xclbin} not found")
        try:
            device = xrt.device(self.device_id)
        except RuntimeError as error:
            raise BackendUnavailable(f"no XRT device {self.device_id!r} found ({error}); check "
                                     f"`xbutil examine`") from None
        xclbin = xrt.xclbin(str(self.xclbin))
        kernels = [k.get_name() for k in xclbin.get_kernels()]
        if self.kernel_name not in kernels:
            raise ValueError(f"{self.xclbin} holds the kernels {', '.join(kernels) or 'none'}, "
                             f"not {self.kernel_name!r}: link it with `cosparse build --board "
                             f"u250` (docs/boards.md)")
        uuid = device.load_xclbin(xclbin)
        # XRT 2023.1 and later open kernels in a hardware context; older ones on the device.
        context = xrt.hw_context(device, uuid) if hasattr(xrt, "hw_context") else None
        self._xrt, self._device = xrt, device
        self._units = self._open_units(xrt, device, uuid, context)
        self._read_clock(xrt, device)

    def _open(self, xrt, device, uuid, context, name):
        if context is not None:
            return xrt.kernel(context, name)
        return xrt.kernel(device, uuid, name)

    def _open_units(self, xrt, device, uuid, context) -> list:
        """Compute units ``<kernel>_1``, ``_2``, ... as linked, up to the first missing one."""
        wanted = self.instances or MAX_UNITS
        units = []
        for index in range(1, wanted + 1):
            name = unit_name(self.kernel_name, index)
            try:
                kernel = self._open(xrt, device, uuid, context, f"{self.kernel_name}:{{{name}}}")
            except RuntimeError:
                break
            units.append(_Unit(index - 1, name, kernel))
        if not units:  # an xclbin linked with other instance names: XRT picks any unit
            units.append(_Unit(0, self.kernel_name,
                               self._open(xrt, device, uuid, context, self.kernel_name)))
        if self.instances is not None and len(units) < self.instances:
            raise ValueError(f"{self.xclbin} holds {len(units)} compute unit(s) of "
                             f"{self.kernel_name}, not the {self.instances} asked for")
        return units

    def _read_clock(self, xrt, device):
        mhz = xclbin_clock_mhz(self.xclbin)
        if mhz is not None:
            self.clock_hz, self.clock_source = mhz * 1e6, "the xclbin's data clock (xclbinutil)"
            return
        try:
            mhz = float(device.get_info(xrt.xrt_info_device.max_clock_frequency_mhz))
        except ValueError:  # "NA" where the device reports no clocks (emulation)
            mhz = 0.0
        self.clock_hz = mhz * 1e6 if mhz > 0 else None
        self.clock_source = ("the device's highest kernel clock (xclbinutil not found)"
                             if self.clock_hz else "none: neither xclbinutil nor the device "
                             "told the clock")

    def _buffers(self, unit: _Unit, count: int):
        """The unit's (features, results) buffers for ``count`` inputs, made on first use."""
        if count not in unit.buffers:
            xrt = self._xrt
            sizes = (self.layout.features_bytes(count), self.layout.results_bytes(count))
            unit.buffers[count] = tuple(
                xrt.bo(self._device, size, xrt.bo.normal, unit.kernel.group_id(arg))
                for arg, size in enumerate(sizes))
        return unit.buffers[count]

    def _start(self, unit: _Unit, features, count: int):
        xrt = self._xrt
        source, sink = self._buffers(unit, count)
        t0 = time.perf_counter()
        source.write(np.ascontiguousarray(features, np.uint8), 0)
        source.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(features), 0)
        t1 = time.perf_counter()
        run = unit.kernel(source, sink, int(count))
        return run, sink, t1 - t0, t1

    def _finish(self, unit: _Unit, started, count: int) -> RunOutput:
        xrt = self._xrt
        run, sink, transfer_in, t1 = started
        state = run.wait(max(1, int(self.timeout * 1000)))
        t2 = time.perf_counter()
        states = xrt.ert_cmd_state
        if state == states.ERT_CMD_STATE_TIMEOUT:
            raise KernelTimeout(f"compute unit {unit.name} did not complete a run of {count} "
                                f"inputs within {self.timeout:g} s (XRT state {state}); the "
                                f"card may need `xbutil reset`")
        if state != states.ERT_CMD_STATE_COMPLETED:
            raise RuntimeError(f"compute unit {unit.name} ended a run of {count} inputs in XRT "
                               f"state {state}, not ERT_CMD_STATE_COMPLETED")
        size = self.layout.results_bytes(count)
        sink.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, size, 0)
        results = np.asarray(sink.read(size, 0)).view(np.uint8).copy()
        t3 = time.perf_counter()
        return RunOutput(results=results, transfer_seconds=transfer_in + (t3 - t2),
                         kernel_seconds=t2 - t1, unit=unit.index)

    def run(self, buffers) -> list:
        """Run each ``(features buffer, count)``, dealt to the units in turn; outputs in order.

        Run ``i`` goes to unit ``i mod units``. Every unit starts a run at
        once; then runs are waited for in order, and each unit's next run
        starts as soon as its previous one is read back, so no unit idles
        while the host waits on another.
        """
        if not self._units:
            raise RuntimeError("the xrt backend is not loaded; call load() first")
        buffers = list(buffers)
        for i, (features, count) in enumerate(buffers):
            if len(features) != self.layout.features_bytes(count):
                raise ValueError(f"run {i}: a features buffer of {len(features)} bytes does not "
                                 f"hold {count} inputs of {self.layout.input_stride} bytes")
        units, in_flight, outputs = self._units, {}, []
        for i, (features, count) in enumerate(buffers[:len(units)]):
            in_flight[i] = self._start(units[i], features, count)
        for i, (_, count) in enumerate(buffers):
            unit = units[i % len(units)]
            outputs.append(self._finish(unit, in_flight.pop(i), count))
            following = i + len(units)
            if following < len(buffers):
                in_flight[following] = self._start(unit, *buffers[following])
        return outputs

    def close(self):
        """Drop the buffers, kernels and device (pyxrt frees them with the objects)."""
        self._units, self._device = [], None
        if self._bridge is not None:
            self._bridge.close()
            self._xrt = self._bridge = None
