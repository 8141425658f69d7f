"""Stream put/get helpers for Amaranth-simulator test benches.

Every unit test of a streaming component drives its inputs and drains its
outputs through these, with random valid gaps and random ready stalls, so
that each test also checks the component loses, duplicates and reorders
nothing under backpressure.
"""

from __future__ import annotations

import random

__all__ = ["stream_put", "stream_get", "put_all", "get_until"]


async def stream_put(ctx, stream, payload):
    """Offer one payload and wait until it is taken."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload and return it."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def put_all(ctx, stream, payloads, *, stall: float = 0.0, seed: int = 0):
    """Send every payload in order, idling a random number of cycles before each.

    ``stall`` is the probability of one idle cycle (repeated geometrically)
    before a beat; 0 sends back to back.
    """
    rng = random.Random(seed)
    for payload in payloads:
        while stall and rng.random() < stall:
            await ctx.tick()
        await stream_put(ctx, stream, payload)


async def get_until(ctx, stream, count: int, *, stall: float = 0.0, seed: int = 1):
    """Receive ``count`` payloads, holding ready low for random cycles before each."""
    rng = random.Random(seed)
    received = []
    for _ in range(count):
        while stall and rng.random() < stall:
            await ctx.tick()
        received.append(await stream_get(ctx, stream))
    return received
