"""pyxrt in another Python: the client of the process bridge (:mod:`.xrt_bridge_server`).

:func:`connect` starts ``xrt_bridge_server.py`` under the Python that
XRT's pyxrt was built for and returns an object that stands in for the
``pyxrt`` module: attribute paths (``pyxrt.bo.normal``), constructors
(``pyxrt.device(0)``), method calls and enum comparisons are forwarded to
the real pyxrt over a pipe, so the xrt backend runs unchanged
(``XrtBackend(..., pyxrt=connect("/usr/bin/python3"))``, or ``cosparse
throughput --backend xrt --xrt-python /usr/bin/python3``). Buffers cross the
pipe base64-encoded, which adds to the host's transfer times (reported
apart from the kernel's), never to the kernel's cycles.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .backends import BackendUnavailable

__all__ = ["SERVER", "Bridge", "connect"]

#: The server script, run by the other Python.
SERVER = Path(__file__).with_name("xrt_bridge_server.py")

_ERRORS = {"TypeError": TypeError, "ValueError": ValueError, "AttributeError": AttributeError}


class Bridge:
    """One server process; :meth:`request` sends a request and returns its decoded result."""

    def __init__(self, python: str, env: dict | None = None):
        # XRT may log to stderr at length: a file, not a pipe nobody drains, takes it.
        self.log = tempfile.TemporaryFile("w+")
        try:
            self.process = subprocess.Popen(
                [python, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.log, text=True, env=env)
        except OSError as error:
            raise BackendUnavailable(f"cannot start {python} for the pyxrt bridge: "
                                     f"{error}") from None
        self.lock = threading.Lock()
        hello = self.process.stdout.readline()
        if not hello:
            self.process.wait()
            message = self._log_tail().splitlines()
            raise BackendUnavailable(
                f"{python} could not start the pyxrt bridge: "
                f"{message[-1] if message else 'no output'}; run `source "
                f"/opt/xilinx/xrt/setup.sh` and check `{python} -c 'import pyxrt'`")
        self.python_version = tuple(json.loads(hello)["python"])

    def request(self, **request):
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the pyxrt bridge process ended: " + self._log_tail())
        reply = json.loads(line)
        if "error" in reply:
            raise _ERRORS.get(reply["error"], RuntimeError)(reply["message"])
        return self._decode(reply["result"])

    def _decode(self, value):
        if "value" in value:
            return value["value"]
        if "bytes" in value:
            return np.frombuffer(base64.b64decode(value["bytes"]), np.int8).copy()
        if "list" in value:
            return [self._decode(item) for item in value["list"]]
        return _Remote(self, value["handle"], value.get("repr", ""))

    def encode(self, value):
        if isinstance(value, (_Remote, _Path)):
            return value._reference()
        if isinstance(value, (np.integer, np.floating)):
            return {"value": value.item()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        return {"bytes": base64.b64encode(memoryview(value).cast("B").tobytes()).decode()}

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().strip()[-500:]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class _Remote:
    """An object living in the server (a device, kernel, buffer, run, enum value...)."""

    def __init__(self, bridge: Bridge, handle: int, text: str):
        self._bridge, self._handle, self._text = bridge, handle, text

    def _reference(self):
        return {"handle": self._handle}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._call(name, args)

    def _call(self, name, args):
        return self._bridge.request(op="method", handle=self._handle, name=name,
                                    args=[self._bridge.encode(a) for a in args])

    def __call__(self, *args):
        return self._call("__call__", args)

    def __eq__(self, other):
        return self._bridge.request(op="eq", args=[self._reference(),
                                                   self._bridge.encode(other)])

    __hash__ = None

    def __str__(self):
        return self._text


class _Path:
    """A pyxrt attribute path (``bo``, ``bo.normal``): called, it constructs; passed, it is."""

    def __init__(self, bridge: Bridge, path: str):
        self._bridge, self._path = bridge, path

    def _reference(self):
        return {"path": self._path}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Path(self._bridge, f"{self._path}.{name}")

    def __call__(self, *args):
        return self._bridge.request(op="call", path=self._path,
                                    args=[self._bridge.encode(a) for a in args])

    def __eq__(self, other):
        return self._bridge.request(op="eq", args=[self._reference(),
                                                   self._bridge.encode(other)])

    __hash__ = None

    def __str__(self):
        return self._path


class _Module:
    """Stands in for the ``pyxrt`` module: top-level names the server's pyxrt has."""

    def __init__(self, bridge: Bridge):
        self._bridge = bridge

    def __getattr__(self, name):
        if name.startswith("_") or not self._bridge.request(op="has", path=name):
            raise AttributeError(f"pyxrt (in {self._bridge.process.args[0]}) has no {name!r}")
        return _Path(self._bridge, name)

    def close(self):
        """End the server process."""
        self._bridge.close()


def connect(python: str = "/usr/bin/python3", env: dict | None = None) -> _Module:
    """A stand-in for ``pyxrt`` served by ``python`` (which must ``import pyxrt``).

    ``env`` defaults to this process's environment (so ``source
    /opt/xilinx/xrt/setup.sh`` beforehand puts pyxrt on ``PYTHONPATH``).
    """
    return _Module(Bridge(python, dict(os.environ) if env is None else env))
