"""cocotb bench of the Vitis RTL kernel (``cosparse_kernel``), run by the driver's sim backend.

It plays the host and the card's memory exactly as the protocol says:
cocotbext-axi's ``AxiRam`` is the device memory on ``m_axi_gmem`` and its
``AxiLiteMaster`` writes and reads ``s_axi_control``, with the register
sequences and buffer images of :mod:`cosparse.sw.driver.protocol`. The
parent (:mod:`cosparse.sw.driver.backends.sim`) writes a job
(``COSPARSE_KERNEL_JOB``, an .npz: each run's features buffer and a JSON
of settings) and reads back the results buffers (``COSPARSE_KERNEL_RESULTS``,
an .npz, each with the kernel's trailer after the records: cycle count,
status, NetSpec fingerprint) and a JSON report (``COSPARSE_KERNEL_REPORT``):
per run the wall-clock times of the transfers and the kernel.

With ``backpressure`` > 0 every memory channel stalls at random (AW, W and
AR not ready, R and B not valid), the stress the kernel must pass without
losing data. A run with ``reset_after`` is cut by ``ap_rst_n`` that many
cycles after its start; the next run shows whether the kernel recovered.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from ..sw.driver import protocol

#: Clock period of the simulation (4 ns: the 250 MHz assumed for UltraScale+).
PERIOD_NS = 4
#: Cycles between two reads of CTRL while a run is in progress.
POLL_CYCLES = 256


def _stalls(rng: random.Random, probability: float):
    while True:
        yield rng.random() < probability


async def _reset(dut, cycles: int = 4):
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, cycles)
    await FallingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)


@cocotb.test()
async def run_kernel(dut):
    job = np.load(os.environ["COSPARSE_KERNEL_JOB"], allow_pickle=False)
    settings = json.loads(str(job["settings"]))
    layout = protocol.Layout(tuple(settings["input_shape"]), settings["classes"])
    size = settings["memory_size"]

    Clock(dut.ap_clk, PERIOD_NS, unit="ns").start(start_high=False)
    dut.ap_rst_n.value = 0
    control = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                            dut.ap_rst_n, reset_active_level=False)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                 reset_active_level=False, size=size)
    stall = settings["backpressure"]
    if stall:
        rng = random.Random(settings["seed"])
        for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                        ram.read_if.ar_channel, ram.read_if.r_channel):
            channel.set_pause_generator(_stalls(random.Random(rng.random()), stall))
    await _reset(dut)

    report, results = [], {}
    for i, run in enumerate(settings["runs"]):
        features, count = job[f"features_{i}"], run["count"]
        t0 = time.perf_counter()
        ram.write(run["features_address"] % size, features.tobytes())
        # a pattern no record can hold: an unwritten record fails to decode
        ram.write(run["results_address"] % size, b"\xff" * layout.results_bytes(count))
        t1 = time.perf_counter()
        for offset, value in protocol.start_writes(layout, run["features_address"],
                                                   run["results_address"], count):
            await control.write_dword(offset, value)
        if run.get("reset_after"):
            await ClockCycles(dut.ap_clk, run["reset_after"])
            ctrl = await control.read_dword(protocol.CTRL)
            await _reset(dut)
            report.append({"reset": True, "busy_when_reset": not ctrl & protocol.AP_IDLE})
            continue
        start_time = get_sim_time("ns")
        budget_ns = run["max_cycles"] * PERIOD_NS
        while not protocol.is_done(await control.read_dword(protocol.CTRL)):
            if get_sim_time("ns") - start_time > budget_ns:
                raise TimeoutError(f"run {i}: no ap_done within {run['max_cycles']} cycles")
            await Timer(POLL_CYCLES * PERIOD_NS, "ns")  # one wake-up, not one per cycle
        t2 = time.perf_counter()
        results[f"results_{i}"] = np.frombuffer(
            ram.read(run["results_address"] % size, layout.results_bytes(count)), np.uint8)
        t3 = time.perf_counter()
        report.append({"reset": False,
                       "transfer_in_seconds": t1 - t0, "kernel_seconds": t2 - t1,
                       "transfer_out_seconds": t3 - t2,
                       "idle_after": bool(await control.read_dword(protocol.CTRL)
                                          & protocol.AP_IDLE)})
    np.savez(os.environ["COSPARSE_KERNEL_RESULTS"], **results)
    with open(os.environ["COSPARSE_KERNEL_REPORT"], "w") as f:
        json.dump(report, f)
