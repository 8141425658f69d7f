"""docs/driver.md's register map, trailer and arguments are those the kernel is generated from."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from cosparse.boards.vitis import kernel_xml
from cosparse.hw.kernel import regmap
from cosparse.hw.kernel.top import TRAILER_LAYOUT

DOC = Path(__file__).resolve().parent.parent / "docs" / "driver.md"


def _table(heading: str) -> list:
    """Rows (lists of cells) of the first table under ``### heading``."""
    text = DOC.read_text()
    section = text[text.index(f"### {heading}\n"):]
    rows, started = [], False
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-") and cells[0] != "offset":
                rows.append(cells)
        elif started:
            break
    return rows


def test_register_map_matches_regmap():
    rows = _table("Register map")
    documented = {name: int(offset, 16) for offset, name, *_ in rows}
    names = ("CTRL", "GIE", "IER", "ISR", "FEATURES", "RESULTS", "COUNT", "CYCLES", "STATUS")
    assert documented == {name: getattr(regmap, name) for name in names}
    text = DOC.read_text()
    for bit, name in enumerate(("ap_start", "ap_done", "ap_idle", "ap_ready")):
        assert 1 << bit == getattr(regmap, name.upper())
        assert f"bit {bit} `{name}`" in text


def test_trailer_table_matches_the_kernel():
    rows = _table("The trailer")
    sizes = {"u32": 4, "u64": 8}
    documented = [(field, int(offset, 16), sizes[kind]) for offset, field, kind, _ in rows]
    assert tuple(documented) == regmap.TRAILER_FIELDS
    # the kernel builds its trailer from this layout: same fields, bit offsets, widths
    built = [(name, field.offset // 8, field.width // 8) for name, field in TRAILER_LAYOUT]
    assert built == documented
    magic = rows[0][3]
    assert f"`{regmap.TRAILER_MAGIC:#010x}`" in magic and "`CSPT`" in magic
    assert rows[-1][3].endswith(f", {regmap.TRAILER_VERSION}")


def test_documented_arguments_are_kernel_xml():
    text = DOC.read_text()
    args = ET.fromstring(kernel_xml()).find("kernel").find("args")
    for arg in args:
        size = int(arg.get("size"), 16)
        kind = "global" if arg.get("addressQualifier") == "1" else "scalar"
        assert f"`{arg.get('name')}` (0x{int(arg.get('offset'), 16):02X}, {size} bytes, " \
               f"{kind})" in text
    order = [a.get("name") for a in args]
    assert re.search(r"kernel\(" + r", ".join(order) + r"\)", text)
