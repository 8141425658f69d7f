"""The process bridge: pyxrt driven from another Python, here the double behind a shim."""

import ast
import os
import sys
from pathlib import Path

import pytest

from cosparse.sw.driver import bridge, open_device
from cosparse.sw.driver.backends import BackendUnavailable
from cosparse.sw.netspec import random_inputs, save


def test_server_keeps_to_python_3_8_and_the_standard_library():
    source = bridge.SERVER.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in getattr(node, "names", [])}
    assert imported == {"base64", "json", "os", "sys", "pyxrt"}
    assert "from __future__" not in source and ":=" not in source


def _shim(folder: Path, fake_path: Path) -> dict:
    """An environment whose ``import pyxrt`` is the double."""
    (folder / "pyxrt.py").write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('fake_pyxrt', {str(fake_path)!r})\n"
        "_m = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_m)\n"
        "globals().update({k: v for k, v in vars(_m).items() if not k.startswith('__')})\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_bridged_backend_end_to_end(fake_pyxrt, tmp_path, monkeypatch, driver_spec,
                                    driver_cache):
    save(driver_spec, tmp_path / "net")
    xclbin = fake_pyxrt.write_xclbin(tmp_path / "k.xclbin", netspec=tmp_path / "net",
                                     cache=driver_cache, units=2)
    env = _shim(tmp_path, Path(fake_pyxrt.__file__))
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    with open_device("xrt", driver_spec, xclbin=xclbin, xrt_python=sys.executable,
                     check=True) as device:
        assert device.backend.units == 2 and device.backend.clock_hz == 250e6
        result = device.infer(random_inputs(driver_spec, 6, seed=41))
        assert result.bit_exact and len(result.unit_cycles) == 2
        server = device.backend._bridge._bridge.process
    assert server.poll() is not None  # closed with the driver


def test_bridge_without_pyxrt_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with pytest.raises(BackendUnavailable, match="could not start the pyxrt bridge: "
                                                 "ModuleNotFoundError: No module named 'pyxrt'"):
        bridge.connect(sys.executable, env=env)
    with pytest.raises(BackendUnavailable, match="cannot start /nonexistent/python"):
        bridge.connect("/nonexistent/python")
