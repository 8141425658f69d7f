"""Vitis RTL kernel around the network: AXI4-Lite control, AXI4 memory master, host protocol.

``regmap`` (register map and buffer layout, shared with the host driver),
``axi`` (interface signatures), ``control`` (the register file), ``dma``
(burst reader and record writer), ``top`` (:class:`~.top.Kernel`).
"""
