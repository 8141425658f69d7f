"""Amaranth design -> Verilog text, in the two stages a person waits for.

``amaranth.back.verilog.convert`` elaborates the design into RTLIL in Python
and then has Yosys turn the RTLIL into Verilog; on the default network the
two take about a minute together. :func:`to_verilog` runs the same two steps
as two :func:`cosparse.sw.progress.stage` s, so the terminal says which one
is running, and returns the very text ``verilog.convert(design, name=name,
emit_src=emit_src)`` returns (same ports from the design's signature, same
Yosys script).

Source attributes (``(* src = "file.py:line" *)`` on every cell and wire,
naming the Python line that made it) are off by default: on the default
network they are a third of the text and only a person tracing a net back
to Python reads them.
"""

from __future__ import annotations

from ..sw import progress

__all__ = ["to_verilog"]


def to_verilog(design, name: str, *, emit_src: bool = False) -> str:
    """Verilog of the ``wiring.Component`` ``design`` with top module ``name``.

    ``emit_src`` keeps Amaranth's source-location attributes.
    """
    from amaranth.back import rtlil, verilog

    with progress.stage("elaborate"):
        text = rtlil.convert(design, name=name, emit_src=emit_src)
    with progress.stage("convert (yosys)"):
        # verilog.convert's own second step: its RTLIL -> Verilog Yosys script.
        return verilog._convert_rtlil_text(text)
