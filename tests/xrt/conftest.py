"""The pyxrt test double, loaded by path (tests are not a package)."""

import importlib.util
from pathlib import Path

import pytest


def _load(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fake_pyxrt():
    return _load("fake_pyxrt")


@pytest.fixture(scope="session")
def pyxrt_surface():
    return _load("pyxrt_surface")
