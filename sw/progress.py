"""Progress a person can see during long steps, on stderr.

Generating the default network's Verilog takes about a minute and its
Verilator build several more; without a word on the terminal that looks
like a hang. Library code marks its long steps with :func:`stage`::

    with progress.stage("verilator: compile", detail=lambda: "12/40 units"):
        ...

which costs nothing until a command turns progress on with
:func:`configure` (the ``cosparse`` command does, for every subcommand,
unless ``--no-progress``). Then a stage prints a line when it starts and
ends, and while it runs:

- on a terminal, one status line rewritten every second with the seconds
  elapsed and the stage's ``detail`` (compile units done, ...);
- elsewhere (``COSPARSE_PROGRESS=1`` forces progress on into a log), a
  line every :data:`LOG_INTERVAL` seconds.

By default progress is on only when stderr is a terminal, so pipes, CI
logs and tests stay quiet; ``COSPARSE_PROGRESS=0`` or ``1`` overrides.
Stages nest (``generate Verilog: elaborate``); the innermost one reports.

The status lines come from a small heartbeat process (:class:`_Heartbeat`),
not from a thread of this one: Yosys's conversion to Verilog runs
in-process (Amaranth's WebAssembly Yosys) and holds the GIL for tens of
seconds, which would silence a thread exactly when the user waits. The
heartbeat lives while a stage is open, prints the innermost stage and its
elapsed seconds on its own clock, and hears of stage changes and of each
stage's ``detail`` from this process whenever it can run. A stream without
a file descriptor (a test's ``io.StringIO``) gets the lines from a thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time

__all__ = ["LOG_INTERVAL", "configure", "enabled", "stage", "note"]

#: Seconds between status lines when stderr is not a terminal (the status line of a
#: terminal is rewritten every second).
LOG_INTERVAL = 5.0
_TTY_INTERVAL = 1.0

_lock = threading.RLock()
_state = {"enabled": False, "stream": None, "tty": False}
_stack: list = []  # open stages: [label, start, detail], innermost last
_ticker: list = []  # the thread feeding the heartbeat (or printing) while a stage is open
_heartbeat: list = []  # the _Heartbeat printing status lines while a stage is open, if any
_wake = threading.Event()

#: The heartbeat process: reads JSON lines on stdin (``["stage", label, seconds elapsed]``,
#: ``["detail", text]``, ``["exit"]``) and prints a status line on its stderr every interval.
_HEARTBEAT = r"""
import json, os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when it ends
interval, tty = float(sys.argv[1]), sys.argv[2] == "1"
label, start, detail, pending = None, 0.0, "", b""
due = time.monotonic() + interval
while True:
    ready = select.select([0], [], [], max(0.0, due - time.monotonic()))[0]
    if ready:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        messages = [json.loads(line) for line in lines]
        if ["exit"] in messages:
            break
        for message in messages:
            if message[0] == "stage":
                label, start, detail = message[1], time.monotonic() - message[2], ""
            else:
                detail = message[1]
        continue
    due = time.monotonic() + interval
    text = f"cosparse: {label}: {detail + ', ' if detail else ''}{time.monotonic() - start:.0f} s"
    os.write(2, ("\r\x1b[K" + text if tty else text + "\n").encode(errors="replace"))
"""


class _Heartbeat:
    """The process printing status lines while a stage is open (see the module docstring)."""

    def __init__(self, stream, interval: float, tty: bool):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HEARTBEAT, str(interval), "1" if tty else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stream.fileno())

    def send(self, *message):
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (OSError, ValueError):  # it is gone: the stage lines still come from here
            pass

    def close(self):
        self.send("exit")
        try:
            self.process.stdin.close()
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


def _start_heartbeat() -> bool:
    """Start the heartbeat process for the configured stream; False when it cannot have one."""
    stream = _state["stream"]
    try:
        stream.fileno()
        stream.flush()
        beat = _Heartbeat(stream, _TTY_INTERVAL if _state["tty"] else LOG_INTERVAL,
                          _state["tty"])
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False
    _heartbeat.append(beat)
    return True


def configure(enabled: bool | None = None, stream=None) -> bool:
    """Turn progress on or off; returns whether it is on.

    ``enabled=None`` decides from the environment: ``COSPARSE_PROGRESS`` set to
    ``1`` or ``0`` wins, else progress is on when ``stream`` (default stderr) is
    a terminal. ``enabled=False`` (``--no-progress``) always turns it off.
    """
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if enabled is None:
        forced = os.environ.get("COSPARSE_PROGRESS", "").strip()
        if forced not in ("", "0", "1"):
            raise ValueError(f"COSPARSE_PROGRESS must be 0 or 1, got {forced!r}")
        enabled = tty if forced == "" else forced == "1"
    with _lock:
        _state.update(enabled=bool(enabled), stream=stream, tty=tty)
    return bool(enabled)


def enabled() -> bool:
    """Whether progress lines are printed."""
    return _state["enabled"]


def _write(text: str, *, final: bool):
    stream = _state["stream"]
    if _state["tty"]:
        stream.write("\r\x1b[K" + text + ("\n" if final else ""))
    else:
        stream.write(text + "\n")
    stream.flush()


def _tick():
    """While a stage is open: feed the heartbeat each stage's detail, or print the status
    lines (no heartbeat)."""
    interval = _TTY_INTERVAL if _state["tty"] else LOG_INTERVAL
    while True:
        _wake.wait(interval)
        _wake.clear()
        with _lock:
            if not _stack:
                _ticker.clear()
                return
            label, start, detail = _stack[-1]
            if _heartbeat and detail is None:
                continue  # the heartbeat counts the seconds on its own
            try:
                text = detail() if detail is not None else ""
            except Exception as error:  # noqa: BLE001 - a detail must not end the report
                text = f"({type(error).__name__}: {error})"
            if _heartbeat:
                _heartbeat[0].send("detail", text)
            else:
                seconds = time.perf_counter() - start
                _write(f"cosparse: {label}: {text + ', ' if text else ''}{seconds:.0f} s",
                       final=False)


def note(message: str):
    """Print ``message`` on stderr as a line of its own (clearing a pending status line)."""
    with _lock:
        if _state["enabled"] and _state["tty"]:
            _write(message, final=True)
        else:
            print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stage(label: str, detail=None):
    """Report the step run inside the ``with`` block as ``label`` (nothing when progress is off).

    ``detail``, a callable returning a short text (``"12/40 units"``), is called
    from another thread at each status line: it must be cheap and must not
    raise for a step that has not got far yet.
    """
    if not _state["enabled"]:
        yield
        return
    with _lock:
        path = ": ".join([entry[0] for entry in _stack] + [label])
        start = time.perf_counter()
        _stack.append([path, start, detail])
        _write(f"cosparse: {path} ...", final=not _state["tty"])
        if not _heartbeat:
            _start_heartbeat()
        if _heartbeat:
            _heartbeat[0].send("stage", path, 0.0)
        if not _ticker:
            _ticker.append(threading.Thread(target=_tick, daemon=True, name="progress"))
            _ticker[0].start()
    ok = False
    try:
        yield
        ok = True
    finally:
        with _lock:
            entry = _stack.pop()
            now = time.perf_counter()
            if _heartbeat and _stack:
                _heartbeat[0].send("stage", _stack[-1][0], now - _stack[-1][1])
            elif _heartbeat:
                _heartbeat.pop().close()
            _write(f"cosparse: {path}: {'done' if ok else 'stopped'} after {now - entry[1]:.1f} s",
                   final=True)
            if not _stack:
                _wake.set()
