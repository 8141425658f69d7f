"""The pyxrt double exposes exactly the listed surface of XRT 2023.2's binding, with its overloads."""

import ast
from pathlib import Path

import numpy as np
import pytest

import cosparse.sw.driver.backends.xrt as xrt_backend


def test_double_exposes_the_listed_surface(fake_pyxrt, pyxrt_surface):
    exposed = fake_pyxrt.exposed()
    assert exposed["classes"] == {name: sorted(methods)
                                  for name, methods in pyxrt_surface.CLASSES.items()}
    assert exposed["enums"] == pyxrt_surface.ENUMS
    top = {name for name in [*pyxrt_surface.CLASSES, *pyxrt_surface.ENUMS] if "." not in name}
    assert set(exposed["module"]) == top | set(pyxrt_surface.MODULE_ATTRIBUTES)
    for owner, enum in (("bo", "bo.flags"), ("kernel", "kernel.cu_access_mode")):
        for value in pyxrt_surface.ENUMS[enum]:  # export_values()
            assert getattr(getattr(fake_pyxrt, owner), value) is getattr(
                getattr(getattr(fake_pyxrt, owner), enum.split(".")[1]), value)
    assert "write_register" not in vars(fake_pyxrt.kernel)
    assert "read_register" not in vars(fake_pyxrt.kernel)


def test_double_checks_overloads_as_pybind11_does(fake_pyxrt):
    with pytest.raises(TypeError, match="incompatible function arguments"):
        fake_pyxrt.device(1.5)
    with pytest.raises(RuntimeError, match="No such device"):
        fake_pyxrt.device(3)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        fake_pyxrt.uuid(b"bytes")
    assert fake_pyxrt.uuid("x").to_string() == "x"


def _pyxrt_names_used(path: Path) -> set:
    """Attribute names read in the backend that are not its own, numpy's or Python's."""
    tree = ast.parse(path.read_text())
    own = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef,
                                                                      ast.ClassDef))}
    own |= {t.attr for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Attribute)}
    own |= {e.attr for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Tuple)
            for e in t.elts if isinstance(e, ast.Attribute)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    library = set(dir(np)) | set(dir(np.ndarray)) | set(dir(Path)) | set(dir(str)) | {
        "perf_counter", "which", "run", "TemporaryDirectory", "loads", "returncode", "layout",
        "loader", "exists"} | set(dir(dict)) | set(dir(list))
    return used - own - library


def test_backend_uses_only_listed_names(pyxrt_surface):
    """Every attribute the backend reads that is not its own is a name the binding has."""
    listed = set()
    for qualname, methods in pyxrt_surface.CLASSES.items():
        listed |= set(qualname.split(".")) | set(methods)
    for qualname, values in pyxrt_surface.ENUMS.items():
        listed |= set(qualname.split(".")) | set(values)
    names = _pyxrt_names_used(Path(xrt_backend.__file__))
    protocol_names = {"features_bytes", "results_bytes", "input_stride", "Layout", "of"}
    assert names - protocol_names <= listed, sorted(names - protocol_names - listed)
    assert {"write_register", "read_register"}.isdisjoint(names)


def test_clock_from_a_dumped_topology():
    doc = {"clock_freq_topology": {"m_count": "2", "m_clock_freq": [
        {"m_freq_Mhz": "300", "m_type": "DATA", "m_name": "DATA_CLK"},
        {"m_freq_Mhz": "500", "m_type": "KERNEL", "m_name": "KERNEL_CLK"}]}}
    assert xrt_backend.clock_from_topology(doc) == 300.0
    assert xrt_backend.clock_from_topology({}) is None
