"""AXI4-Lite manager and AXI4 memory for Amaranth-simulator test benches, with random stalls.

Every handshake waits a random number of cycles on the side the bench
plays, so the unit tests also check that the kernel's AXI logic holds
its outputs steady while stalled and loses nothing.
"""

import random

BOUNDARY = 4096


async def _until(ctx, condition, *signals):
    """Tick until ``condition`` is sampled high; the ``signals`` sampled on that edge.

    A plain loop rather than ``ctx.tick().until()``, whose async generator warns
    when a background testbench is dropped while waiting in it.
    """
    while True:
        _, _, *values, high = await ctx.tick().sample(*signals, condition)
        if high:
            return values


async def axil_write(ctx, bus, address, data, strobe=0xF, rng=random):
    """Write one register (AW and W offered with independent random delays); return BRESP."""
    delays = {"aw": rng.randint(0, 3), "w": rng.randint(0, 3)}
    pending = {"aw", "w"}
    cycle = 0
    while pending:
        ctx.set(bus.awaddr, address)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strobe)
        ctx.set(bus.awvalid, "aw" in pending and cycle >= delays["aw"])
        ctx.set(bus.wvalid, "w" in pending and cycle >= delays["w"])
        _, _, awv, awr, wv, wr = await ctx.tick().sample(bus.awvalid, bus.awready,
                                                         bus.wvalid, bus.wready)
        if awv and awr:
            pending.discard("aw")
        if wv and wr:
            pending.discard("w")
        cycle += 1
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    while rng.random() < 0.5:
        await ctx.tick()
    ctx.set(bus.bready, 1)
    resp, = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return resp


async def axil_read(ctx, bus, address, rng=random):
    """Read one register; return RDATA."""
    for _ in range(rng.randint(0, 3)):
        await ctx.tick()
    ctx.set(bus.araddr, address)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    while rng.random() < 0.5:
        await ctx.tick()
    ctx.set(bus.rready, 1)
    data, = await ctx.tick().sample(bus.rdata).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return data


def _check_burst(address, length, size, burst, beat_bytes, bursts):
    assert size == beat_bytes.bit_length() - 1, f"AxSIZE {size} is not a full beat"
    assert burst == 1, f"AxBURST {burst} is not INCR"
    assert address % beat_bytes == 0, f"unaligned burst address {address:#x}"
    end = address + (length + 1) * beat_bytes - 1
    assert address // BOUNDARY == end // BOUNDARY, f"burst {address:#x}..{end:#x} crosses 4 KiB"
    bursts.append((address, length + 1))


class Memory:
    """A byte-addressed memory answering AXI4 bursts with random stalls on every channel."""

    def __init__(self, beat_bytes=64, stall=0.3, seed=0):
        self.bytes, self.beat = {}, beat_bytes
        self.stall, self.rng = stall, random.Random(seed)
        self.read_bursts, self.write_bursts = [], []

    def load(self, address, data: bytes):
        for i, b in enumerate(data):
            self.bytes[address + i] = b

    def dump(self, address, length) -> bytes:
        return bytes(self.bytes.get(address + i, 0) for i in range(length))

    async def _pause(self, ctx):
        while self.rng.random() < self.stall:
            await ctx.tick()

    async def serve_reads(self, ctx, bus):
        """Answer every read burst, beat by beat (background testbench)."""
        while True:
            await self._pause(ctx)
            ctx.set(bus.arready, 1)
            address, length, size, burst = await _until(
                ctx, bus.arvalid, bus.araddr, bus.arlen, bus.arsize, bus.arburst)
            ctx.set(bus.arready, 0)
            _check_burst(address, length, size, burst, self.beat, self.read_bursts)
            for n in range(length + 1):
                await self._pause(ctx)
                beat = self.dump(address + n * self.beat, self.beat)
                ctx.set(bus.rdata, int.from_bytes(beat, "little"))
                ctx.set(bus.rlast, n == length)
                ctx.set(bus.rresp, 0)
                ctx.set(bus.rvalid, 1)
                await _until(ctx, bus.rready)
                ctx.set(bus.rvalid, 0)

    async def serve_writes(self, ctx, bus):
        """Accept every write burst and answer OKAY (background testbench)."""
        while True:
            await self._pause(ctx)
            ctx.set(bus.awready, 1)
            address, length, size, burst = await _until(
                ctx, bus.awvalid, bus.awaddr, bus.awlen, bus.awsize, bus.awburst)
            ctx.set(bus.awready, 0)
            _check_burst(address, length, size, burst, self.beat, self.write_bursts)
            for n in range(length + 1):
                await self._pause(ctx)
                ctx.set(bus.wready, 1)
                data, strobe, last = await _until(ctx, bus.wvalid, bus.wdata, bus.wstrb,
                                                  bus.wlast)
                ctx.set(bus.wready, 0)
                assert last == (n == length), f"wlast {last} on beat {n} of {length + 1}"
                raw = data.to_bytes(self.beat, "little")
                for i in range(self.beat):
                    if strobe >> i & 1:
                        self.bytes[address + n * self.beat + i] = raw[i]
            await self._pause(ctx)
            ctx.set(bus.bresp, 0)
            ctx.set(bus.bvalid, 1)
            await _until(ctx, bus.bready)
            ctx.set(bus.bvalid, 0)
