"""cosparse.boards: FPGA platforms, build flows and resource figures.

``vitis`` (Vitis RTL-kernel build plans) with ``alveo_u250`` and ``zu3eg``;
``ulx3s`` with ``ecp5`` and ``rom_demo`` (the open ECP5 flow to a bitstream);
``xilinx_synth``, ``devices`` and ``resources`` (UltraScale+ resources from
Yosys, instances per chip); ``yosys`` (finding and running the open tools);
``cli`` (``cosparse build``, ``cosparse resources``). See docs/boards.md and docs/resources.md.
"""
