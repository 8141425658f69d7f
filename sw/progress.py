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
"""

from __future__ import annotations

import contextlib
import os
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
_ticker: list = []  # the thread printing status lines while a stage is open
_wake = threading.Event()


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


def _status(entry, now) -> str:
    label, start, detail = entry
    text = detail() if detail is not None else ""
    return f"{label}: {text + ', ' if text else ''}{now - start:.0f} s"


def _tick():
    interval = _TTY_INTERVAL if _state["tty"] else LOG_INTERVAL
    while True:
        _wake.wait(interval)
        _wake.clear()
        with _lock:
            if not _stack:
                _ticker.clear()
                return
            try:
                line = _status(_stack[-1], time.perf_counter())
            except Exception as error:  # noqa: BLE001 - a detail must not end the report
                line = f"{_stack[-1][0]}: ({type(error).__name__}: {error})"
            _write("cosparse: " + line, final=False)


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
        _stack.append([path, time.perf_counter(), detail])
        _write(f"cosparse: {path} ...", final=not _state["tty"])
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
            seconds = time.perf_counter() - entry[1]
            _write(f"cosparse: {path}: {'done' if ok else 'stopped'} after {seconds:.1f} s",
                   final=True)
            if not _stack:
                _wake.set()
