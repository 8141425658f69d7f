"""One small engine through Yosys's UltraScale+ flow: memories in block RAM, products in DSPs.

The accumulators (one memory per bank and buffer, one synchronous read port
and one write port with an enable per sum, hw/engine/router.py; or, kernel-
addressed, one memory of single sums per bank and lane with a second read
port for the drain and a base memory beside it, hw/engine/kernel_ring.py)
and the packed weight ROM (synchronous read, hw/engine/multiply.py) must be
shaped so that synthesis infers block RAM, not distributed RAM or
flip-flops, the int8 x weight products must land in DSP48E2 slices, and no
path may hold more than 8 logic levels as Vivado counts them.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from cosparse.boards.resources import module_netlist
from cosparse.boards.xilinx_synth import synthesise
from cosparse.boards.yosys import ToolMissing, find_tool
from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine, LinearEngine

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import conv_layer, linear_layer  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("position_major,accumulators", [(False, "word"), (True, "word"),
                                                         (True, "kernel")])
def test_engine_memories_map_to_block_ram_and_products_to_dsp(tmp_path, position_major,
                                                              accumulators):
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))
    rng = np.random.default_rng(0)
    # 32 input channels of 3x3 kernels, 4 groups one lane at a time: a 1,152-word weight ROM;
    # one offset per cycle: one bank of 4 passes x 16 x 16 positions (1,024 words of 2 sums),
    # twice; or, position-major, a ring of 4 passes x 8 x 32 positions (1,024 words), once;
    # kernel-addressed: the ring's 2,048 single sums and as many bases.
    size = 34 if position_major else 18
    layer = conv_layer(rng, c=32, size=size, k=3, out=8, n=2)
    config = LayerConfig(lanes=1, acc_bits=accumulator_bits(layer), accumulators=accumulators)
    engine = ConvEngine(layer, config,
                        pool=2 if position_major else 1, position_major=position_major)
    top, netlist = module_netlist(engine)
    used = synthesise(netlist, top, cache=tmp_path / "cache")
    cells = used.cells
    block = cells.get("RAMB18E2", 0) + cells.get("RAMB36E2", 0) + cells.get("URAM288", 0)
    # The accumulator buffers (two, or one ring; kernel-addressed: the sums and their bases)
    # and the weight ROM, one block RAM or more each.
    assert block >= {(False, "word"): 3, (True, "word"): 2, (True, "kernel"): 3}[
        position_major, accumulators], cells
    # No distributed RAM anywhere: every memory of this engine is block-RAM shaped.
    assert not any(name.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "RAM512"))
                   for name in cells), cells
    assert used.dsp >= 1, cells
    assert used.logic_levels <= 8, used


@pytest.mark.slow
def test_linear_engine_memories_map_to_block_ram_and_paths_stay_short(tmp_path):
    """A linear engine's lane accumulators (hw/engine/router.py: LaneAccumulators, a pipelined
    read-modify-write) keep one read and one write port per memory, so they land in block
    RAM once deep enough, and neither the read-modify-write nor the drain's lane selection
    and bias add exceed 8 logic levels."""
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))
    rng = np.random.default_rng(1)
    # 1,024 outputs of n = 2 kernels, one lane: 512 passes, 1,024 single sums per buffer.
    layer = linear_layer(rng, 16, 1024, 2)
    engine = LinearEngine(layer, LayerConfig(lanes=1, acc_bits=accumulator_bits(layer)))
    top, netlist = module_netlist(engine)
    used = synthesise(netlist, top, cache=tmp_path / "cache")
    cells = used.cells
    block = cells.get("RAMB18E2", 0) + cells.get("RAMB36E2", 0) + cells.get("URAM288", 0)
    assert block >= 3, cells  # the two accumulator buffers and the weight ROM at least
    assert used.parts["accumulators"]["bram36"] >= 1, used.parts
    assert used.dsp >= 1, cells
    assert used.logic_levels <= 8, used
