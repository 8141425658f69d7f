"""The Vitis RTL kernel's parts in Amaranth's simulator: register file, burst reader, record writer.

The whole kernel around a network runs in Verilator through the driver's
sim backend (tests/sim/test_driver.py); here each part is checked alone,
under random stalls on every AXI channel, on small parameters.
"""

import random
import re

import pytest
from amaranth.sim import Simulator

from cosparse.hw.kernel import regmap
from cosparse.hw.kernel.control import Control
from cosparse.hw.kernel.dma import BurstReader, RecordWriter
from cosparse.hw.kernel.top import NAME, Kernel
from cosparse.sw.netspec import random_netspec

from ._axi_util import Memory, axil_read, axil_write

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.run()


# ---- register file ----------------------------------------------------------

def test_control_registers_handshake_and_interrupts():
    dut = Control()
    rng = random.Random(3)
    seen = {"starts": 0}

    async def core(ctx):
        """A core that runs one run of 7 cycles and reports 123 cycles."""
        ctx.set(dut.idle, 1)
        ctx.set(dut.cycles, (5 << 32) | 123)
        await ctx.tick().until(dut.start)
        seen["starts"] += 1
        seen["args"] = (ctx.get(dut.features), ctx.get(dut.results), ctx.get(dut.count))
        ctx.set(dut.idle, 0)
        await ctx.tick().repeat(7)
        ctx.set(dut.done, 1)
        ctx.set(dut.idle, 1)
        await ctx.tick()
        ctx.set(dut.done, 0)
        await ctx.tick().repeat(20)
        assert not ctx.get(dut.start), "started twice"

    async def host(ctx):
        bus = dut.bus
        assert await axil_read(ctx, bus, regmap.CTRL, rng) == regmap.AP_IDLE
        writes = {regmap.FEATURES: 0x1040, regmap.FEATURES + 4: 0x2,
                  regmap.RESULTS: 0x8000, regmap.RESULTS + 4: 0x3, regmap.COUNT: 9}
        for offset, value in writes.items():
            assert await axil_write(ctx, bus, offset, value, rng=rng) == 0
        for offset, value in writes.items():
            assert await axil_read(ctx, bus, offset, rng) == value
        # byte strobes: only byte 1 of COUNT changes
        await axil_write(ctx, bus, regmap.COUNT, 0xAABBCCDD, strobe=0b0010, rng=rng)
        assert await axil_read(ctx, bus, regmap.COUNT, rng) == 0xCC09
        await axil_write(ctx, bus, regmap.COUNT, 9, rng=rng)
        await axil_write(ctx, bus, regmap.GIE, 1, rng=rng)
        await axil_write(ctx, bus, regmap.IER, regmap.INTERRUPT_DONE, rng=rng)
        await axil_write(ctx, bus, regmap.CTRL, regmap.AP_START, rng=rng)
        assert await axil_read(ctx, bus, regmap.CTRL, rng) & regmap.AP_START
        await ctx.tick().until(dut.interrupt)
        ctrl = await axil_read(ctx, bus, regmap.CTRL, rng)
        assert ctrl == regmap.AP_DONE | regmap.AP_IDLE | regmap.AP_READY
        # ap_done and ap_ready were cleared by that read; ap_start ended with the run
        assert await axil_read(ctx, bus, regmap.CTRL, rng) == regmap.AP_IDLE
        assert await axil_read(ctx, bus, regmap.ISR, rng) == regmap.INTERRUPT_DONE
        await axil_write(ctx, bus, regmap.ISR, regmap.INTERRUPT_DONE, rng=rng)  # toggle
        assert await axil_read(ctx, bus, regmap.ISR, rng) == 0
        assert not ctx.get(dut.interrupt)
        assert await axil_read(ctx, bus, regmap.CYCLES, rng) == 123
        assert await axil_read(ctx, bus, regmap.CYCLES + 4, rng) == 5
        ctx.set(dut.error, 1)
        assert await axil_read(ctx, bus, regmap.STATUS, rng) == regmap.STATUS_ERROR
        assert await axil_read(ctx, bus, 0x800, rng) == 0  # unmapped reads as zero
        assert seen == {"starts": 1, "args": (0x2_0000_1040, 0x3_0000_8000, 9)}

    _run(dut, host, core)


# ---- burst reader -------------------------------------------------------------

@pytest.mark.parametrize("max_burst, address, beats", [(16, 0x1F40, 41), (4, 0x40, 9)])
def test_reader_streams_every_beat_in_order_under_stalls(max_burst, address, beats):
    dut = BurstReader(max_burst=max_burst, length_bits=16)
    memory = Memory(stall=0.3, seed=max_burst)
    data = random.Random(1).randbytes(64 * beats)
    memory.load(address, data)
    received = []

    async def control(ctx):
        for run in range(2):  # a second run after the first: the reader restarts cleanly
            ctx.set(dut.address, address + 5)  # low bits are ignored
            ctx.set(dut.beats, beats)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            rng = random.Random(run)
            for _ in range(beats):
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.o.ready, 1)
                beat, = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
                ctx.set(dut.o.ready, 0)
                received.append(beat.to_bytes(64, "little"))
            for _ in range(30):
                _, _, valid, arvalid = await ctx.tick().sample(dut.o.valid, dut.bus.arvalid)
                assert not valid and not arvalid, "read past the requested beats"
        assert not ctx.get(dut.error)

    async def serve(ctx):
        await memory.serve_reads(ctx, dut.bus)

    _run(dut, control, background=[serve])
    assert b"".join(received) == data + data
    assert sum(n for _, n in memory.read_bursts) == 2 * beats
    assert max(n for _, n in memory.read_bursts) <= max_burst


# ---- record writer ----------------------------------------------------------

@pytest.mark.parametrize("payload_bits, record_bytes", [(100, 64), (600, 128)])
def test_writer_stores_each_record_as_one_burst(payload_bits, record_bytes):
    dut = RecordWriter(payload_bits=payload_bits, record_bytes=record_bytes)
    memory = Memory(stall=0.3, seed=payload_bits)
    rng = random.Random(2)
    records = [rng.getrandbits(payload_bits) for _ in range(6)]
    base = 0x3000 - 2 * record_bytes

    async def producer(ctx):
        ctx.set(dut.address, base)
        ctx.set(dut.records, len(records))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for record in records:
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.payload, record)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
        await ctx.tick().until(~dut.busy)
        assert not ctx.get(dut.i.ready), "took a record past the count"

    async def serve(ctx):
        await memory.serve_writes(ctx, dut.bus)

    _run(dut, producer, background=[serve])
    for n, record in enumerate(records):
        got = memory.dump(base + n * record_bytes, record_bytes)
        assert got == record.to_bytes(record_bytes, "little")
    assert memory.write_bursts == [(base + n * record_bytes, record_bytes // 64)
                                   for n in range(len(records))]


# ---- parameters and the top level's ports -------------------------------------

def test_parameter_validation_names_the_value():
    with pytest.raises(ValueError, match="max_burst.*got 65"):
        BurstReader(max_burst=65)
    with pytest.raises(ValueError, match="fifo_depth must hold a whole burst"):
        BurstReader(max_burst=16, fifo_depth=8)
    with pytest.raises(ValueError, match="record_bytes.*got 96"):
        RecordWriter(payload_bits=8, record_bytes=96)
    with pytest.raises(ValueError, match="does not fit"):
        RecordWriter(payload_bits=600, record_bytes=64)
    with pytest.raises(TypeError, match="spec must be a NetSpec, got dict"):
        Kernel({})
    with pytest.raises(TypeError, match="config must be a HwConfig"):
        Kernel(random_netspec(1), config="fast")
    with pytest.raises(ValueError, match="max_burst.*got 0"):
        Kernel(random_netspec(1), max_burst=0)


def test_kernel_verilog_has_vitis_port_names():
    from amaranth.back import verilog
    text = verilog.convert(Kernel(random_netspec(1)), name=NAME)
    header = re.search(rf"module {NAME}\((.*?)\);", text, re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert {"ap_clk", "ap_rst_n", "interrupt"} <= ports
    assert "clk" not in ports and "rst" not in ports
    for channel in ("awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp",
                    "bvalid", "bready", "araddr", "arvalid", "arready", "rdata", "rresp",
                    "rvalid", "rready"):
        assert f"s_axi_control_{channel}" in ports
    for channel in ("awid", "awaddr", "awlen", "awsize", "awburst", "wdata", "wstrb", "wlast",
                    "bid", "bresp", "arid", "araddr", "arlen", "arsize", "arburst", "rid",
                    "rdata", "rresp", "rlast"):
        assert f"m_axi_gmem_{channel}" in ports
    widths = {name: high for high, name in
              re.findall(r"(?:input|output) (?:wire )?\[(\d+):0\] (\w+);", text)}
    assert widths["s_axi_control_awaddr"] == "11" and widths["s_axi_control_wdata"] == "31"
    assert widths["m_axi_gmem_araddr"] == "63" and widths["m_axi_gmem_wdata"] == "511"
