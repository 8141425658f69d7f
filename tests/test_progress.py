"""Progress on stderr: the stage lines, when they are on, and a real build seen on a terminal."""

import io
import os
import pty
import re
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from cosparse.hw.convert import to_verilog
from cosparse.hw.generate import generate
from cosparse.sim.build import _compile_units
from cosparse.sw import netspec, progress


@pytest.fixture
def lines(monkeypatch):
    """Progress forced on into a non-terminal stream, one status line per 0.05 s."""
    stream = io.StringIO()
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.05)
    progress.configure(True, stream)
    yield stream
    progress.configure(False)


def test_stages_nest_and_report_detail_while_running(lines):
    with progress.stage("generate"):
        with progress.stage("elaborate", detail=lambda: "3/4 units"):
            time.sleep(0.3)
    text = lines.getvalue().splitlines()
    assert text[:2] == ["cosparse: generate ...", "cosparse: generate: elaborate ..."]
    assert re.fullmatch(r"cosparse: generate: elaborate: 3/4 units, 0 s", text[2])
    assert any(re.fullmatch(r"cosparse: generate: elaborate: done after 0\.\d s", line)
               for line in text)
    assert re.fullmatch(r"cosparse: generate: done after 0\.\d s", text[-1])


def test_a_failing_step_is_reported_stopped_and_a_failing_detail_does_not_stop(lines):
    with pytest.raises(KeyError):
        with progress.stage("build", detail=lambda: {}["x"]):
            time.sleep(0.2)
            raise KeyError("x")
    text = lines.getvalue()
    assert "cosparse: build: (KeyError: 'x')" in text
    assert text.splitlines()[-1].startswith("cosparse: build: stopped after")


def test_quiet_unless_a_terminal_or_forced(monkeypatch):
    stream = io.StringIO()
    monkeypatch.delenv("COSPARSE_PROGRESS", raising=False)
    assert progress.configure(None, stream) is False
    with progress.stage("quiet"):
        pass
    assert stream.getvalue() == ""
    monkeypatch.setenv("COSPARSE_PROGRESS", "1")
    assert progress.configure(None, stream) is True
    assert progress.configure(False, stream) is False  # --no-progress wins
    monkeypatch.setenv("COSPARSE_PROGRESS", "yes")
    with pytest.raises(ValueError, match="COSPARSE_PROGRESS must be 0 or 1"):
        progress.configure(None, stream)
    progress.configure(False)


@pytest.mark.parametrize("seed", [3, 11])
def test_staged_conversion_is_amaranths_verilog(seed):
    from amaranth.back import verilog
    network = generate(netspec.random_netspec(seed))
    assert to_verilog(network, "top") == verilog.convert(network, name="top", emit_src=False)
    with_src = to_verilog(network, "top", emit_src=True)
    assert with_src == verilog.convert(network, name="top")
    assert "(* src =" in with_src


def test_compile_units_counts_verilators_object_files(tmp_path):
    assert _compile_units(tmp_path) == "verilating"
    (tmp_path / "Vtop.mk").write_text("VM_USER_CLASSES = \\\n  verilator \\\n\n")
    # As Verilator writes it: each list continued with backslashes, ended by a blank line.
    classes = ("VM_PARALLEL_BUILDS = {}\nVM_CLASSES_FAST += \\\n  Vtop \\\n  Vtop__1 \\\n\n"
               "VM_CLASSES_SLOW += \\\n  Vtop__Slow \\\n\nVM_SUPPORT_FAST += \\\n  Vtop__Dpi \\\n\n"
               "VM_GLOBAL_FAST += \\\n  verilated \\\n\nVM_GLOBAL_SLOW += \\\n\n")
    (tmp_path / "Vtop_classes.mk").write_text(classes.format(1))
    (tmp_path / "Vtop__1.o").touch()
    (tmp_path / "verilated.o").touch()
    assert _compile_units(tmp_path) == "2/6 C++ units compiled"
    (tmp_path / "Vtop_classes.mk").write_text(classes.format(0))  # one Vtop__ALL unit
    assert _compile_units(tmp_path) == "1/3 C++ units compiled"
    for name in ("Vtop__ALL", "verilator"):
        (tmp_path / f"{name}.o").touch()
    assert _compile_units(tmp_path) == "3/3 C++ units compiled, linking"


def _read_with_times(fd, process, timeout):
    """(seconds since start, bytes) for each read of the terminal until the process ends."""
    start, chunks = time.monotonic(), []
    while time.monotonic() - start < timeout:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            chunks.append((time.monotonic() - start, data))
        elif process.poll() is not None:
            break
    return chunks


@pytest.mark.slow
def test_simulate_on_a_terminal_shows_progress_within_5_s_and_every_10_s(tmp_path):
    """`cosparse simulate` of a random network on an empty build cache, its stderr a
    pseudo-terminal: progress within 5 s of the start and no silence over 10 s until the
    table (the Verilator build of even a small network takes tens of seconds)."""
    spec = netspec.random_netspec(7)
    folder = netspec.save(spec, tmp_path / "net")
    np.save(tmp_path / "x.npy", netspec.random_inputs(spec, 3, seed=2))
    env = {**os.environ, "COSPARSE_CACHE": str(tmp_path / "cache")}
    env.pop("COSPARSE_PROGRESS", None)
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cosparse.sw.cli", "simulate", "--netspec",
                                str(folder), "--features", str(tmp_path / "x.npy"), "--stress",
                                "2"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    try:
        chunks = _read_with_times(master, process, timeout=600)
        out = process.communicate(timeout=60)[0].decode()
    finally:
        os.close(master)
    assert process.returncode == 0, out
    text = b"".join(data for _, data in chunks).decode(errors="replace")
    assert "cosparse: generate cosparse_axis_top.v: elaborate" in text
    assert re.search(r"verilator build: \d+/\d+ C\+\+ units compiled", text)
    assert "verilator build: done after" in text
    # The 5 s and 10 s hold for a machine that is not oversubscribed; with more runnable
    # processes than cores (a parallel test run beside other work) every wait stretches.
    stretch = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    times = [t for t, _ in chunks]
    assert times[0] <= 5 * stretch, (times[:3], stretch)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 10 * stretch, (max(gaps), stretch)
    assert "bit-exact: 6/6 outputs" in out


def _on_a_terminal(args, tmp_path, timeout=600):
    """Run ``args`` with stderr a pseudo-terminal; (return code, [(seconds, bytes)], text)."""
    env = {**os.environ, "COSPARSE_CACHE": str(tmp_path / "cache")}
    env.pop("COSPARSE_PROGRESS", None)
    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    try:
        chunks = _read_with_times(master, process, timeout=timeout)
        process.wait(60)
    finally:
        os.close(master)
    return process.returncode, chunks, b"".join(d for _, d in chunks).decode(errors="replace")


def _stretch():
    """How much a loaded machine stretches a wait (more runnable processes than cores)."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


#: Holds the GIL in one C call (``sum`` over a range) for about 8 s inside a stage: a thread
#: of the process cannot print then, as during Amaranth's in-process Yosys. The speed is the
#: fastest of five short calibrations, so a calibration slowed by a loaded machine does not
#: shorten the hold.
_HOLD_THE_GIL = """
import time
from cosparse.sw import progress
progress.configure(None)
fastest = float("inf")
for _ in range(5):
    start = time.perf_counter()
    sum(range(2 * 10 ** 6))
    fastest = min(fastest, time.perf_counter() - start)
n = int(2 * 10 ** 6 * 8 / max(fastest, 1e-4))
with progress.stage("holding the GIL"):
    sum(range(n))
"""


def test_status_lines_keep_coming_while_the_gil_is_held(tmp_path):
    """On a terminal the status line is rewritten every second, also while one C call holds
    the GIL for seconds (a thread of the process printing them would be silent)."""
    code, chunks, text = _on_a_terminal([sys.executable, "-c", _HOLD_THE_GIL], tmp_path)
    assert code == 0, text
    assert "holding the GIL: done after" in text
    held = float(re.search(r"done after (\d+\.\d) s", text).group(1))
    statuses = re.findall(r"holding the GIL: (\d+) s", text)
    # A waiting process is woken promptly even on a loaded machine: little stretch allowed
    # (a thread of the holder would show one status line in all and a gap of the whole hold).
    assert held >= 3 and len(statuses) >= max(2, held / 3), (held, statuses)
    gaps = [b - a for (a, _), (b, _) in zip(chunks, chunks[1:])]
    assert max(gaps) <= 3 * min(_stretch(), 1.5), (max(gaps), _stretch())


def test_generate_on_a_terminal_shows_progress_within_5_s_and_every_10_s(tmp_path):
    """`cosparse generate` of a small network, stderr a pseudo-terminal: the first line within
    5 s, no silence over 10 s (issue 16), and the heartbeat process gone at the end."""
    folder = netspec.save(netspec.random_netspec(3, max_channels=2, max_size=6), tmp_path / "n")
    code, chunks, text = _on_a_terminal(
        [sys.executable, "-m", "cosparse.sw.cli", "generate", "--netspec", str(folder),
         "--out", str(tmp_path / "gen")], tmp_path)
    assert code == 0, text
    assert "generate Verilog: convert (yosys): done after" in text
    times = [t for t, _ in chunks]
    assert times[0] <= 5 * _stretch(), (times[:3], _stretch())
    assert max(b - a for a, b in zip(times, times[1:])) <= 10 * _stretch()
    assert "Traceback" not in text


def test_no_progress_and_a_pipe_are_quiet(tmp_path):
    folder = netspec.save(netspec.random_netspec(3, max_channels=2, max_size=6), tmp_path / "n")
    args = [sys.executable, "-m", "cosparse.sw.cli", "generate", "--netspec", str(folder),
            "--out", str(tmp_path / "gen")]
    code, chunks, text = _on_a_terminal(args + ["--no-progress"], tmp_path)
    assert code == 0 and text == ""
    env = {k: v for k, v in os.environ.items() if k != "COSPARSE_PROGRESS"}
    piped = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert piped.returncode == 0 and piped.stderr == ""
