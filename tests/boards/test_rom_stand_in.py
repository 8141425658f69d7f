"""Stand-in ROM contents (boards/rom_stand_in.py): same shape, same cells, only faster."""

import re

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from cosparse.boards.resources import module_netlist
from cosparse.boards.rom_stand_in import PERIOD, stand_in_roms
from cosparse.boards.xilinx_synth import synthesise
from cosparse.boards.yosys import ToolMissing, find_tool


class RomAndRam(wiring.Component):
    """A ROM of random words (and, with ``ram``, a RAM beside it), read synchronously."""

    def __init__(self, depth: int, width: int, ram: bool = True):
        rng = np.random.default_rng(0)
        self._init = [int(v) for v in rng.integers(0, 1 << width, depth, dtype=np.uint64)]
        self._depth, self._width, self._ram = depth, width, ram
        super().__init__({"addr": In(range(depth)), "rom": Out(width),
                          **({"ram": Out(width), "w_data": In(width), "w_en": In(1)}
                             if ram else {})})

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = rom = Memory(shape=unsigned(self._width), depth=self._depth,
                                            init=self._init)
        read = rom.read_port()
        m.d.comb += [read.addr.eq(self.addr), self.rom.eq(read.data)]
        if self._ram:
            m.submodules.scratch = ram = Memory(shape=unsigned(self._width),
                                                depth=self._depth, init=[])
            ram_read, write = ram.read_port(), ram.write_port()
            m.d.comb += [ram_read.addr.eq(self.addr), self.ram.eq(ram_read.data),
                         write.addr.eq(self.addr), write.data.eq(self.w_data),
                         write.en.eq(self.w_en)]
        return m


def _data(rtlil: str, memid: str) -> str:
    """The DATA constant (binary, most significant bit first) of ``memid``'s init cell."""
    block = rtlil[rtlil.index(f'parameter \\MEMID "\\\\{memid}"'):]
    return re.search(r"connect \\DATA \d+'([01]+)", block).group(1)


def test_large_roms_get_periodic_contents_and_rams_keep_theirs():
    depth, width = 1500, 24
    top, text = module_netlist(RomAndRam(depth, width))
    out, replaced = stand_in_roms(text, min_bits=depth * width)
    assert replaced == [f"rom_and_ram.weights: {depth} x {width} bits"]
    data = _data(out, "weights")
    assert len(data) == depth * width and len(out) == len(text)
    words = [data[len(data) - (j + 1) * width:len(data) - j * width] for j in range(depth)]
    assert all(words[j] == words[j % PERIOD] for j in range(depth))
    # Every bit column takes both values, and the real contents are gone.
    columns = np.array([[c == "1" for c in w] for w in words[:PERIOD]])
    assert columns.any(axis=0).all() and (~columns).any(axis=0).all()
    assert data != _data(text, "weights")
    assert _data(out, "scratch") == _data(text, "scratch")
    # Below the size limit, nothing changes.
    assert stand_in_roms(text, min_bits=depth * width + 1) == (text, [])
    with pytest.raises(ValueError, match="min_bits"):
        stand_in_roms(text, min_bits=0)


@pytest.mark.slow
def test_stand_in_rom_synthesises_to_the_same_cells(tmp_path):
    try:
        find_tool("yosys")
    except ToolMissing as error:
        pytest.skip(str(error))
    # 4,096 x 36 bits: four RAMB36E2 tiles of 1,024 words, each of its own contents.
    top, text = module_netlist(RomAndRam(4096, 36, ram=False))
    out, replaced = stand_in_roms(text, min_bits=4096 * 36)
    assert replaced
    real = synthesise(text, top, cache=tmp_path / "real")
    stand_in = synthesise(out, top, cache=tmp_path / "stand-in")
    assert real.bram36 == stand_in.bram36 >= 4
    assert real.cells == stand_in.cells
