"""cocotb bench of the whole network (``cosparse_axis_top``), run by :mod:`cosparse.sim.run`.

The parent process writes a job (``COSPARSE_SIM_JOB``, an .npz: the inputs,
the golden logits and classes, and a JSON of settings) and reads back the
JSON report the bench writes to ``COSPARSE_SIM_REPORT``. Three phases:

1. **latency**: input 0 alone; cycles from its first beat accepted to its
   result valid.
2. **stream**: every input back to back, output always ready; the cycle of
   each result gives the intervals between results, and the steady-state
   initiation interval is their mean over the second half of the stream.
   Busy cycles per engine come from the wrapper's counters.
3. **stress**: the first ``stress`` inputs again with random idle cycles
   between input beats and random backpressure on the output.

Every result of every phase is compared with the golden model. Python only
wakes on handshake events and wide (``beat_bytes``) input beats, never once
per cycle: per-cycle Python I/O would dominate the simulation time.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer, with_timeout

from .result_word import unpack_result

PERIOD_NS = 10


def _u(handle) -> int:
    return handle.value.to_unsigned()


class _Bench:
    def __init__(self, dut, job, settings):
        self.dut, self.settings = dut, settings
        self.x = job["x"].astype(np.uint8)  # two's complement bytes of the int8 features
        self.expected_logits = job["logits"]
        self.expected_cls = job["cls"]
        self.beat = settings["beat_bytes"]
        self.classes = settings["classes"]
        self.engines = settings["engines"]
        self.bits = settings["counter_bits"]
        self.rng = random.Random(settings.get("seed", 0))
        self.progress_path = settings.get("progress")
        self.done = 0
        self.results = []

    # -- helpers ---------------------------------------------------------------
    def cycles(self) -> int:
        return _u(self.dut.cycles)

    def busy(self) -> list:
        return self._counters(self.dut.busy_cycles)

    def work(self) -> list:
        return self._counters(self.dut.work_cycles)

    def _counters(self, signal) -> list:
        word = _u(signal)
        mask = (1 << self.bits) - 1
        return [(word >> (e * self.bits)) & mask for e in range(self.engines)]

    def beats(self, index: int) -> list:
        raw = self.x[index].tobytes()
        return [int.from_bytes(raw[i:i + self.beat].ljust(self.beat, b"\0"), "little")
                for i in range(0, len(raw), self.beat)]

    def tick_progress(self):
        self.done += 1
        if self.progress_path and (self.done % 4 == 0 or self.done < 4):
            with open(self.progress_path, "w") as f:
                f.write(str(self.done))

    # -- drivers (always resume in the writable falling-edge timestep) ---------
    async def send(self, indices, gap: float, first_beat: dict | None = None):
        dut = self.dut
        for index in indices:
            beats = self.beats(index)
            for j, word in enumerate(beats):
                if gap and self.rng.random() < gap:
                    dut.s_axis_tvalid.value = 0
                    await ClockCycles(dut.clk, self.rng.randint(1, 8))
                    await FallingEdge(dut.clk)
                dut.s_axis_tdata.value = word
                dut.s_axis_tlast.value = int(j == len(beats) - 1)
                dut.s_axis_tvalid.value = 1
                while True:
                    await ReadOnly()
                    if dut.s_axis_tready.value:
                        break
                    await RisingEdge(dut.s_axis_tready)
                    await FallingEdge(dut.clk)
                if first_beat is not None and j == 0:
                    first_beat[index] = self.cycles()
                await RisingEdge(dut.clk)
                await FallingEdge(dut.clk)
        dut.s_axis_tvalid.value = 0

    async def receive(self, indices, stall: float, phase: str):
        dut = self.dut
        out = []
        dut.m_axis_tready.value = 1
        for index in indices:
            while True:
                if stall and self.rng.random() < stall:
                    dut.m_axis_tready.value = 0
                    await ClockCycles(dut.clk, self.rng.randint(1, 16))
                    await FallingEdge(dut.clk)
                    dut.m_axis_tready.value = 1
                await ReadOnly()
                if dut.m_axis_tvalid.value:
                    break
                await RisingEdge(dut.m_axis_tvalid)
                await FallingEdge(dut.clk)
            cycle = self.cycles()
            logits, cls = unpack_result(_u(dut.m_axis_tdata), self.classes)
            error = int(dut.error.value)
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            expected = [int(v) for v in self.expected_logits[index]]
            ok = logits == expected and cls == int(self.expected_cls[index]) and not error
            out.append({"phase": phase, "index": int(index), "cycle": cycle, "logits": logits,
                        "cls": cls, "bit_exact": bool(ok)})
            self.tick_progress()
        return out

    async def phase(self, indices, *, gap=0.0, stall=0.0, name="stream"):
        first = {}
        budget_ns = self.settings["max_cycles_per_input"] * max(1, len(indices)) * PERIOD_NS
        sender = cocotb.start_soon(self.send(indices, gap, first))
        results = await with_timeout(self.receive(indices, stall, name), budget_ns, "ns")
        await sender
        return results, first


@cocotb.test()
async def stream_network(dut):
    job_path = os.environ["COSPARSE_SIM_JOB"]
    job = np.load(job_path, allow_pickle=False)
    settings = json.loads(str(job["settings"]))
    bench = _Bench(dut, job, settings)
    n = len(bench.x)

    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = 0
    dut.s_axis_tlast.value = 0
    dut.m_axis_tready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

    report = {"inputs": n}
    # 1. latency of one input alone
    results, first = await bench.phase([0], name="latency")
    report["latency"] = results[0]["cycle"] - first[0]
    all_results = list(results)
    await ClockCycles(dut.clk, 4)
    await FallingEdge(dut.clk)

    # 2. every input back to back, output always ready
    busy0, work0, cycle0, wall0 = bench.busy(), bench.work(), bench.cycles(), time.perf_counter()
    results, first = await bench.phase(list(range(n)), name="stream")
    busy1, work1, cycle1, wall1 = bench.busy(), bench.work(), bench.cycles(), time.perf_counter()
    all_results += results
    cycles = [r["cycle"] for r in results]
    intervals = [b - a for a, b in zip(cycles, cycles[1:])]
    steady = intervals[len(intervals) // 2:] if len(intervals) >= 3 else intervals
    report["stream"] = {
        "cycles": cycle1 - cycle0, "seconds": wall1 - wall0,
        "result_cycles": [c - cycle0 for c in cycles],
        "intervals": intervals,
        "initiation_interval": (sum(steady) / len(steady)) if steady else None,
        "steady_intervals_used": len(steady),
        "busy_cycles": [b - a for a, b in zip(busy0, busy1)],
        "work_cycles": [b - a for a, b in zip(work0, work1)],
    }

    # 3. stress: random input gaps and output backpressure
    stress = min(n, int(settings.get("stress", 0)))
    if stress:
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        results, _ = await bench.phase(list(range(stress)), gap=settings.get("gap", 0.2),
                                       stall=settings.get("backpressure", 0.3), name="stress")
        all_results += results
    report["stress_inputs"] = stress
    report["results"] = all_results
    report["total_cycles"] = bench.cycles()
    report["error"] = int(dut.error.value)
    with open(os.environ["COSPARSE_SIM_REPORT"], "w") as f:
        json.dump(report, f)
