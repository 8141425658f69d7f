"""Fault injection on the build cache and the kernel bench (issue 14, items 1 and 2).

Races of several ``cosparse simulate`` processes on one empty cache, every
kind of corrupt build marker, a failed build, and a kernel that never
answers a register read: each ends in success or in one named error, never
a traceback, a poisoned cache or a hang.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cosparse.sim import build as build_module
from cosparse.sim.build import BuildError, build
from cosparse.sw import netspec
from cosparse.sw.netspec import random_inputs, random_netspec


sys.path.insert(0, str(Path(__file__).parent))
from _sim_util import have as _have, needs_icarus, needs_verilator  # noqa: E402


def _cosparse(args, cache, **kwargs):
    env = dict(os.environ, COSPARSE_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-m", "cosparse.sw.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small random network saved as a NetSpec, and 3 inputs saved as features."""
    root = tmp_path_factory.mktemp("faults")
    spec = random_netspec(1)
    folder = netspec.save(spec, root / "net")
    x = random_inputs(spec, 3, seed=2)
    np.save(root / "x.npy", x)
    return spec, folder, root / "x.npy"


@needs_verilator
def test_five_simulate_runs_racing_on_an_empty_cache_all_succeed(small, tmp_path):
    """Two started together, three more within 10 s: one builds, all are bit-exact."""
    spec, folder, features = small
    cache = tmp_path / "cache"
    args = ["simulate", "--netspec", str(folder), "--features", str(features), "--json",
            "--stress", "1"]
    runs = [_cosparse(args, cache), _cosparse(args, cache)]
    for _ in range(3):
        time.sleep(2.5)
        runs.append(_cosparse(args, cache))
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        reports.append(json.loads(out))
    assert all(r["summary"]["all_bit_exact"] for r in reports)
    assert sorted(r["summary"]["build_cached"] for r in reports) == [False] + [True] * 4
    assert not list(cache.rglob("*.gch.tmp*"))
    again = _cosparse(args, cache)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert json.loads(out)["summary"]["build_cached"]


def _marker(directory):
    return directory / "built.json"


#: A tiny network whose Icarus build takes seconds (generation dominates).
TINY = dict(seed=3, max_channels=2, max_size=6)


@pytest.fixture
def fake_compiler(monkeypatch):
    """Replace generation + compilation by writing the files a build leaves (fast)."""
    calls = []

    def fake(spec, config, *, dense, simulator, waves, directory, key, top, log):
        calls.append(directory)
        (directory / "build").mkdir(parents=True, exist_ok=True)
        source = directory / "cosparse_axis_top.v"
        source.write_text("module cosparse_axis_top; endmodule\n")
        (directory / "build" / "sim.vvp").write_text("#! vvp\n")
        return build_module.Build(simulator=simulator, directory=directory, verilog=source,
                                  key=key, engines=1, classes=2, input_size=4, beat_bytes=64,
                                  counter_bits=32, cached=False, generate_seconds=0.0,
                                  build_seconds=0.0, top=build_module.TOPS[top])

    monkeypatch.setattr(build_module, "_build", fake)
    monkeypatch.setattr(build_module, "find_simulator", lambda simulator: {})
    return calls


@pytest.mark.parametrize("corruption", [
    "truncated", "empty", "missing key", "extra key", "other key", "not an object",
    "not utf-8", "string engines", "number verilog", "empty artifact", "missing artifact", "empty verilog", "missing verilog"])
def test_a_corrupt_marker_is_rebuilt_not_a_traceback(fake_compiler, tmp_path, corruption):
    spec = random_netspec(**TINY)
    directory = build(spec, simulator="icarus", cache=tmp_path).directory
    assert build(spec, simulator="icarus", cache=tmp_path).cached and len(fake_compiler) == 1
    marker = _marker(directory)
    text = marker.read_text()
    info = json.loads(text)
    artifact = directory / "build" / "sim.vvp"
    verilog = directory / "cosparse_axis_top.v"
    if corruption == "truncated":
        marker.write_text(text[:len(text) // 2])
    elif corruption == "empty":
        marker.write_text("")
    elif corruption == "missing key":
        del info["engines"]
        marker.write_text(json.dumps(info))
    elif corruption == "extra key":
        marker.write_text(json.dumps(dict(info, surprise=1)))
    elif corruption == "other key":
        marker.write_text(json.dumps(dict(info, key="0" * 16)))
    elif corruption == "not an object":
        marker.write_text("[1, 2]")
    elif corruption == "not utf-8":
        marker.write_bytes(b"\xff\xfe{")
    elif corruption == "string engines":
        marker.write_text(json.dumps(dict(info, engines="3")))
    elif corruption == "number verilog":
        marker.write_text(json.dumps(dict(info, verilog=5)))
    elif corruption == "empty artifact":
        artifact.write_bytes(b"")
    elif corruption == "missing artifact":
        artifact.unlink()
    elif corruption == "empty verilog":
        verilog.write_text("")
    else:
        verilog.unlink()
    messages = []
    again = build(spec, simulator="icarus", cache=tmp_path, log=messages.append)
    assert not again.cached and len(fake_compiler) == 2
    assert "rebuilding" in messages[0]
    assert build(spec, simulator="icarus", cache=tmp_path).cached and len(fake_compiler) == 2


def test_a_verilator_model_that_is_not_executable_is_rebuilt(fake_compiler, tmp_path):
    spec = random_netspec(**TINY)

    def executable(simulator, directory, name):
        return directory / "build" / "sim.vvp"

    import unittest.mock
    with unittest.mock.patch.object(build_module, "_artifact", executable):
        directory = build(spec, cache=tmp_path).directory
        (directory / "build" / "sim.vvp").chmod(0o644)
        assert not build(spec, cache=tmp_path).cached
        (directory / "build" / "sim.vvp").chmod(0o755)
        assert build(spec, cache=tmp_path).cached


def test_the_marker_is_written_atomically(fake_compiler, tmp_path, monkeypatch):
    """A crash while the marker is written leaves no marker, never a partial one."""
    spec = random_netspec(**TINY)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    replace = os.replace
    monkeypatch.setattr(build_module.os, "replace", crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            build(spec, simulator="icarus", cache=tmp_path)
    finally:
        monkeypatch.setattr(build_module.os, "replace", replace)
    assert not list(tmp_path.rglob("built.json"))
    assert not build(spec, simulator="icarus", cache=tmp_path).cached


def test_a_second_process_waits_for_the_lock(fake_compiler, tmp_path):
    """While another process holds a design's lock, build() waits (and says so)."""
    import fcntl
    import threading
    spec = random_netspec(**TINY)
    directory = build(spec, simulator="icarus", cache=tmp_path).directory
    handle = open(directory.with_name(directory.name + ".lock"), "a+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    messages, done = [], threading.Event()
    thread = threading.Thread(target=lambda: (build(spec, simulator="icarus", cache=tmp_path,
                                                    log=messages.append), done.set()))
    thread.start()
    time.sleep(1)
    assert not done.is_set() and "waiting for another process" in messages[0]
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()
    thread.join(30)
    assert done.is_set()


@needs_icarus
def test_a_truncated_marker_of_a_real_build_is_rebuilt(tmp_path):
    spec = random_netspec(**TINY)
    first = build(spec, simulator="icarus", cache=tmp_path)
    marker = _marker(first.directory)
    marker.write_text(marker.read_text()[:40])
    again = build(spec, simulator="icarus", cache=tmp_path)
    assert not again.cached and again.as_dict().keys() == first.as_dict().keys()
    assert build(spec, simulator="icarus", cache=tmp_path).cached


@needs_icarus
def test_a_failed_build_names_its_log_and_is_never_reused(tmp_path, monkeypatch):
    spec = random_netspec(**TINY)
    monkeypatch.setitem(build_module.BUILD_ARGS, "icarus", ("-g2005", "-Wnot-a-flag", "-y"))
    with pytest.raises(BuildError, match=r"build\.log"):
        build(spec, simulator="icarus", cache=tmp_path)
    monkeypatch.undo()
    assert not list(tmp_path.rglob("built.json"))
    assert not build(spec, simulator="icarus", cache=tmp_path).cached


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_an_interrupted_compiler_leaves_no_process(tmp_path):
    """SIGINT to the Python process alone ends the whole process group of a command."""
    runner = build_module.get_runner("icarus")
    script = tmp_path / "slow.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path / 'child'}\nwait\n")
    script.chmod(0o755)
    runner.env = dict(os.environ)
    import signal
    import threading
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        runner._execute_cmds([[str(script)]], tmp_path)
    child = int((tmp_path / "child").read_text())
    time.sleep(0.5)
    assert not _running(child)


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    runner = build_module.get_runner("icarus", timeout=1)
    runner.env = dict(os.environ)
    start = time.monotonic()
    with pytest.raises(build_module.SimulationTimeout, match="wall-clock limit of 1 s"):
        runner._execute_cmds([["sh", "-c", "sleep 300 & wait"]], tmp_path)
    assert time.monotonic() - start < 15


def _never_rvalid(text: str) -> str:
    """Wrap the kernel's Verilog: the same module, but s_axi_control_rvalid stays 0."""
    top = text.index("module cosparse_kernel(")
    end = text.index("endmodule", top)
    ports = re.findall(r"^\s*(input|output)\s*(\[[^\]]*\])?\s*([\w$]+);", text[top:end],
                       re.MULTILINE)
    names = [name for _, _, name in ports]
    lines = [f"module cosparse_kernel({', '.join(names)});"]
    lines += [f"  {direction} {width} {name};" for direction, width, name in ports]
    lines.append("  wire rvalid_inner;")
    connections = [f".{n}({'rvalid_inner' if n == 's_axi_control_rvalid' else n})"
                   for n in names]
    lines.append(f"  cosparse_kernel_inner inner({', '.join(connections)});")
    lines.append("  assign s_axi_control_rvalid = 1'h0;")
    lines.append("endmodule")
    inner = text[:top] + "module cosparse_kernel_inner(" + text[top + len("module cosparse_kernel("):]
    return inner + "\n" + "\n".join(lines) + "\n"


@needs_verilator
def test_a_kernel_that_never_raises_rvalid_ends_cosparse_run_within_a_minute(
        small, tmp_path, monkeypatch):
    spec, folder, features = small
    convert = build_module.to_verilog
    monkeypatch.setattr(build_module, "to_verilog",
                        lambda *a, **k: _never_rvalid(convert(*a, **k)))
    broken = build(spec, cache=tmp_path, top="kernel")
    monkeypatch.undo()
    assert "cosparse_kernel_inner" in broken.verilog.read_text()
    start = time.monotonic()
    run = _cosparse(["run", "--netspec", str(folder), "--features", str(features)], tmp_path)
    out, err = run.communicate(timeout=120)
    elapsed = time.monotonic() - start
    assert run.returncode == 2, err
    assert "never raised s_axi_control_rvalid" in err and "Traceback" not in err
    assert elapsed < 60
    assert not list(tmp_path.rglob("job.npz"))


def test_a_run_past_its_timeout_names_ap_done(small, driver_cache):
    from cosparse.sw.driver import open_device
    from cosparse.sw.driver.backends.sim import KernelTimeout
    spec = small[0]
    with open_device("sim", spec, cache=driver_cache, timeout=1e-6) as device:
        with pytest.raises(KernelTimeout, match=r"run 0 \(4 inputs\): the kernel never raised "
                                                r"ap_done \(CTRL bit 1\)") as failure:
            device.infer(random_inputs(spec, 4, seed=1))
    # the cache is shared with the other xdist worker, whose runs hold their own
    # job.npz meanwhile: look only in this run's folder, the one the error names
    run_dir = Path(re.search(r"see (\S+)/sim\.log", str(failure.value)).group(1))
    assert run_dir.is_dir() and not (run_dir / "job.npz").exists()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_timeouts_are_refused(small, value):
    from cosparse.sw.driver.backends.sim import SimBackend
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        SimBackend(small[0], timeout=value)
    with pytest.raises(ValueError, match="bus_timeout must be a positive number of seconds"):
        SimBackend(small[0], bus_timeout=value)
