"""AXI4-Lite and AXI4 interface signatures, and flat port names for a Vitis RTL kernel.

Members are named as in the AXI specification without the channel-free
prefix (``awaddr``, ``rdata``...) and oriented from the manager's side, so
a subordinate takes ``signature.flip()``. Vitis (and cocotbext-axi) find
ports by ``<bundle>_<member>`` names; :func:`flat_members` and
:func:`connect_flat` turn an interface into such ports and back.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["axi_lite_signature", "axi4_read_signature", "axi4_write_signature",
           "axi4_signature", "flat_members", "connect_flat"]

def axi_lite_signature(address_bits: int, data_bits: int) -> wiring.Signature:
    """AXI4-Lite, from the manager's side: the five channels with protection and strobes."""
    return wiring.Signature({
        "awaddr": Out(address_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(address_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def axi4_read_signature(address_bits: int, data_bits: int, id_bits: int = 1) -> wiring.Signature:
    """AXI4 read channels (AR, R), from the manager's side."""
    return wiring.Signature({
        "arid": Out(id_bits), "araddr": Out(address_bits), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arcache": Out(4), "arprot": Out(3), "arvalid": Out(1),
        "arready": In(1),
        "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    })


def axi4_write_signature(address_bits: int, data_bits: int, id_bits: int = 1) -> wiring.Signature:
    """AXI4 write channels (AW, W, B), from the manager's side."""
    return wiring.Signature({
        "awid": Out(id_bits), "awaddr": Out(address_bits), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awcache": Out(4), "awprot": Out(3), "awvalid": Out(1),
        "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    })


def axi4_signature(address_bits: int, data_bits: int, id_bits: int = 1) -> wiring.Signature:
    """A full AXI4 manager port: the read and the write channels."""
    return wiring.Signature({
        **axi4_read_signature(address_bits, data_bits, id_bits).members,
        **axi4_write_signature(address_bits, data_bits, id_bits).members,
    })


def flat_members(prefix: str, signature: wiring.Signature, *, manager: bool) -> dict:
    """``{prefix_member: In/Out}`` ports of a component that is the manager or the subordinate."""
    members = {}
    for name, member in signature.members.items():
        flow = member.flow if manager else member.flow.flip()
        members[f"{prefix}_{name}"] = flow(member.shape)
    return members


def connect_flat(m, component, prefix: str, interface, signature: wiring.Signature, *,
                 manager: bool):
    """Wire ``component``'s flat ``prefix_*`` ports to the inner ``interface`` (same side)."""
    for name, member in signature.members.items():
        port, inner = getattr(component, f"{prefix}_{name}"), getattr(interface, name)
        outward = (member.flow == wiring.Out) == manager
        m.d.comb += port.eq(inner) if outward else inner.eq(port)
