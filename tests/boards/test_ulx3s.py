"""ULX3S: the ROM demo top in simulation, the ECP5 flow on a tiny net (nextpnr's report parsing:
test_timing.py)."""

import gc

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosparse.boards.rom_demo import RomDemo
from cosparse.boards.ulx3s import build_ulx3s
from cosparse.boards.yosys import ToolMissing, find_tool
from cosparse.sw.netspec import random_inputs, random_netspec

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

SPEC = random_netspec(3, max_channels=3, max_size=6)
INPUTS = random_inputs(SPEC, 3, seed=4)  # golden classes 0, 3, 0


def run_demo(top, cycles):
    """The classes shown, one per result, and the final agreement bit."""
    sim = Simulator(top)
    sim.add_clock(1e-8)
    shown = []

    async def bench(ctx):
        alive = 0
        for _ in range(cycles):
            await ctx.tick()
            if ctx.get(top.alive) != alive:
                alive ^= 1
                shown.append(ctx.get(top.shown))
        shown.append(ctx.get(top.all_ok))

    sim.add_testbench(bench)
    sim.run()
    return shown[:-1], shown[-1]


def test_rom_demo_shows_the_golden_classes_in_turn():
    top = RomDemo(SPEC, INPUTS, hold_bits=7)
    assert list(top.predictions) == [0, 3, 0]
    shown, all_ok = run_demo(top, 900)
    assert len(shown) >= 4 and all_ok == 1
    assert shown == [[0, 3, 0][i % 3] for i in range(len(shown))]


def test_rom_demo_flags_a_wrong_prediction():
    top = RomDemo(SPEC, INPUTS, hold_bits=7)
    top.predictions = np.array([0, 1, 0])  # what the board is told to expect, now wrong
    shown, all_ok = run_demo(top, 500)
    assert shown[:2] == [0, 3] and all_ok == 0


def test_rom_demo_errors():
    with pytest.raises(TypeError, match="spec"):
        RomDemo("spec", INPUTS)
    with pytest.raises(ValueError, match="1 to 64"):
        RomDemo(SPEC, random_inputs(SPEC, 65))
    with pytest.raises(ValueError, match="hold_bits"):
        RomDemo(SPEC, INPUTS, hold_bits=0)
    with pytest.raises(ValueError, match="leds"):
        RomDemo(SPEC, INPUTS, leds=3)
    gc.collect()  # the half-built tops warn when collected: here, under this test's filter


@pytest.mark.slow
def test_ecp5_flow_to_a_bitstream(tmp_path):
    try:
        for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
            find_tool(tool)
    except ToolMissing as error:
        pytest.skip(str(error))
    report = build_ulx3s(SPEC, tmp_path, inputs=INPUTS[:2])
    assert report["expected_classes"] == [0, 3]
    assert report["timing_met"] and report["fmax_mhz"] > 25.0
    assert list(report["constraint_mhz"].values()) == [25.0]
    assert report["utilisation"]["MULT18X18D"]["used"] >= 1
    bitstream = tmp_path / "cosparse_ulx3s.bit"
    assert str(bitstream) == report["bitstream"] and bitstream.stat().st_size > 10_000
