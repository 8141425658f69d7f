"""Installation without Debian packages or root: a built wheel, and one clear line per missing tool.

The missing tools are simulated by running ``cosparse`` in a child process whose
PATH holds none of them (the child Python is started by its absolute path).
"""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cosparse.sim import build as sim_build
from cosparse.sw import netspec

ROOT = Path(__file__).resolve().parents[1]


def _path_without(folder: Path, hidden) -> str:
    """A PATH of one folder linking every program on this PATH but the ``hidden`` ones."""
    folder.mkdir(parents=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name not in hidden and not target.exists() and not target.is_symlink() \
                    and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(folder)


#: The Debian packages' programs that the hardware flow must do without.
DEBIAN_TOOLS = ("espeak-ng", "sox", "iverilog", "vvp")


def _cosparse(args, *, path, cwd, env=None, python=sys.executable, timeout=600):
    """Run ``cosparse ARGS`` with ``python`` and PATH ``path``; the finished process."""
    env = {**os.environ, **(env or {}), "PATH": path}
    env.pop("COSPARSE_PROGRESS", None)
    return subprocess.run([str(python), "-m", "cosparse.sw.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def small_net(tmp_path):
    spec = netspec.random_netspec(3)
    folder = netspec.save(spec, tmp_path / "net")
    np.save(tmp_path / "x.npy", netspec.random_inputs(spec, 3, seed=1))
    return folder, tmp_path / "x.npy"


def _one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def test_data_synth_without_espeak_names_the_package(tmp_path):
    result = _cosparse(["data", "synth", "--out", str(tmp_path / "data"), "--samples"],
                       path=_path_without(tmp_path / "bin", DEBIAN_TOOLS), cwd=tmp_path)
    _one_line_error(result, "espeak-ng", "sudo apt-get install espeak-ng")
    assert not any((tmp_path / "data").glob("*.wav"))


@pytest.mark.parametrize("engine", ["flite", "festival"])
def test_data_synth_without_another_engine_names_the_package(tmp_path, engine):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    result = _cosparse(["data", "synth", "--out", str(tmp_path / "data"), "--engines",
                        f"espeak-ng,{engine}"],
                       path=_path_without(tmp_path / "bin", ("flite", "festival")), cwd=tmp_path)
    _one_line_error(result, engine, f"sudo apt-get install {engine}")
    assert not (tmp_path / "data").exists()


def test_icarus_without_iverilog_names_the_package(tmp_path, small_net):
    folder, npy = small_net
    result = _cosparse(["simulate", "--sim", "icarus", "--netspec", str(folder), "--features",
                        str(npy)], path=_path_without(tmp_path / "bin", DEBIAN_TOOLS),
                       cwd=tmp_path, env={"COSPARSE_CACHE": str(tmp_path / "cache")})
    _one_line_error(result, "iverilog", "sudo apt-get install iverilog")


def test_verilator_without_a_compiler_names_the_packages(tmp_path, small_net):
    folder, npy = small_net
    path = _path_without(tmp_path / "bin", ("c++", "g++", "make"))
    result = _cosparse(["simulate", "--netspec", str(folder), "--features", str(npy)],
                       path=path, cwd=tmp_path, env={"COSPARSE_CACHE": str(tmp_path / "cache")})
    _one_line_error(result, "c++", "make", "sudo apt-get install g++ make")


def test_missing_libpython_names_the_package(monkeypatch):
    import find_libpython
    monkeypatch.setattr(find_libpython, "find_libpython", lambda: None)
    version = "%d.%d" % sys.version_info[:2]
    with pytest.raises(sim_build.SimulatorMissing,
                       match=rf"sudo apt-get install libpython{version}`$"):
        sim_build.find_simulator("verilator")


def _wheel(tmp_path) -> Path:
    """A wheel built from a copy of the package's sources (the checkout stays clean)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for top in ("api", "sw", "hw", "sim", "boards"):
        shutil.copytree(ROOT / top, source / top,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("cosparse-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_and_generates_and_simulates_outside_the_tree(tmp_path, small_net):
    """``pip install`` of the wheel (no deps: this environment's are used) into a fresh venv,
    then ``cosparse generate`` and ``simulate`` from a folder outside the source tree, with
    no espeak-ng, sox or iverilog on PATH and an empty build cache."""
    folder, npy = small_net
    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for asset in ("cosparse/__init__.py", "cosparse/sw/assets/default/netspec/netspec.json",
                  "cosparse/sw/assets/default/netspec/arrays.npz",
                  "cosparse/sw/assets/samples/yes_0.wav", "cosparse/hw/generate.py",
                  "cosparse/sim/bench_network.py", "cosparse/boards/yosys.py"):
        assert asset in names, asset
    assert not [n for n in names if n.startswith(("tests/", "cosparse/tests"))]

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # This environment's packages (cosparse's dependencies) after the venv's own.
    deps = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (site / "zz_cosparse_test_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, timeout=600)

    work = tmp_path / "elsewhere"
    work.mkdir()
    path = f"{env_dir / 'bin'}{os.pathsep}{_path_without(tmp_path / 'bin', DEBIAN_TOOLS)}"
    where = subprocess.run([str(python), "-c", "import cosparse.hw, cosparse.sw.assets as a; "
                            "print(cosparse.hw.__file__); print(a.DEFAULT_NETSPEC.exists()); "
                            "print(cosparse.__file__, callable(cosparse.generate))"],
                           cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(site) and where[1] == "True", where
    assert Path(where[2]).is_relative_to(site) and where[3] == "True", where

    env = {"COSPARSE_CACHE": str(tmp_path / "cache")}
    generated = _cosparse(["generate", "--netspec", str(folder), "--out", "gen"],
                          path=path, cwd=work, env=env, python=python)
    assert generated.returncode == 0, generated.stderr
    assert (work / "gen" / "cosparse_top.v").stat().st_size > 0
    assert "initiation interval" in generated.stdout
    simulated = _cosparse(["simulate", "--netspec", str(folder), "--features", str(npy),
                           "--stress", "2"], path=path, cwd=work, env=env, python=python)
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert "bit-exact: 6/6 outputs" in simulated.stdout
