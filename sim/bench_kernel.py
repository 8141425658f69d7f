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

Every wait on the kernel is bounded in wall-clock time: each AXI4-Lite
transaction by ``bus_timeout_seconds`` and each run's wait for ``ap_done``
by its ``timeout_seconds`` (and by ``max_cycles`` simulated cycles). A
kernel that never answers ends the bench with a report ``{"error": ...}``
naming the signal that never came (``arready``, ``rvalid``, ``awready``,
``wready``, ``bvalid`` or ``ap_done``), which the parent raises.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from ..sw.driver import protocol

#: Clock period of the simulation (4 ns: the 250 MHz assumed for UltraScale+).
PERIOD_NS = 4
#: Cycles between two reads of CTRL while a run is in progress.
POLL_CYCLES = 256
#: Cycles between two looks at the wall clock while a bus transaction is pending.
BUS_CHECK_CYCLES = 64


class KernelTimeout(Exception):
    """The kernel did not answer in time; the message names the signal that never came."""


def _missing_signal(dut, write: bool) -> str:
    """Which handshake of a pending AXI4-Lite transaction the kernel has not given."""
    bus = "s_axi_control_"
    if write:
        if int(getattr(dut, bus + "awvalid").value):
            return "awready"
        if int(getattr(dut, bus + "wvalid").value):
            return "wready"
        return "bvalid"
    return "arready" if int(getattr(dut, bus + "arvalid").value) else "rvalid"


async def _bounded(dut, transaction, what: str, write: bool, seconds: float):
    """Await ``transaction`` (a coroutine) for at most ``seconds`` of wall-clock time."""
    task = cocotb.start_soon(transaction)
    start = time.perf_counter()
    while not task.done():
        await First(task.complete, ClockCycles(dut.ap_clk, BUS_CHECK_CYCLES))
        if not task.done() and time.perf_counter() - start > seconds:
            signal = _missing_signal(dut, write)
            task.cancel()
            raise KernelTimeout(f"{what}: the kernel never raised s_axi_control_{signal} "
                                f"(waited {seconds:g} s wall clock); the AXI4-Lite "
                                f"{'write' if write else 'read'} never completed")
    return task.result()


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
    try:
        await _run_kernel(dut)
    except KernelTimeout as error:
        with open(os.environ["COSPARSE_KERNEL_REPORT"], "w") as f:
            json.dump({"error": str(error)}, f)


async def _run_kernel(dut):
    job = np.load(os.environ["COSPARSE_KERNEL_JOB"], allow_pickle=False)
    settings = json.loads(str(job["settings"]))
    bus_seconds = settings["bus_timeout_seconds"]

    async def write(offset, value):
        await _bounded(dut, control.write_dword(offset, value),
                       f"writing register 0x{offset:02x}", True, bus_seconds)

    async def read(offset):
        return await _bounded(dut, control.read_dword(offset),
                              f"reading register 0x{offset:02x}", False, bus_seconds)

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
            await write(offset, value)
        if run.get("reset_after"):
            await ClockCycles(dut.ap_clk, run["reset_after"])
            ctrl = await read(protocol.CTRL)
            await _reset(dut)
            report.append({"reset": True, "busy_when_reset": not ctrl & protocol.AP_IDLE})
            continue
        start_time, start_wall = get_sim_time("ns"), time.perf_counter()
        while not protocol.is_done(await read(protocol.CTRL)):
            cycles = (get_sim_time("ns") - start_time) // PERIOD_NS
            wall = time.perf_counter() - start_wall
            if cycles > run["max_cycles"] or wall > run["timeout_seconds"]:
                raise KernelTimeout(
                    f"run {i} ({count} inputs): the kernel never raised ap_done (CTRL bit 1) "
                    f"within {cycles:,} cycles and {wall:.0f} s wall clock (limits "
                    f"{run['max_cycles']:,} cycles, {run['timeout_seconds']:g} s)")
            await Timer(POLL_CYCLES * PERIOD_NS, "ns")  # one wake-up, not one per cycle
        t2 = time.perf_counter()
        results[f"results_{i}"] = np.frombuffer(
            ram.read(run["results_address"] % size, layout.results_bytes(count)), np.uint8)
        t3 = time.perf_counter()
        report.append({"reset": False,
                       "transfer_in_seconds": t1 - t0, "kernel_seconds": t2 - t1,
                       "transfer_out_seconds": t3 - t2,
                       "idle_after": bool(await read(protocol.CTRL) & protocol.AP_IDLE)})
    np.savez(os.environ["COSPARSE_KERNEL_RESULTS"], **results)
    with open(os.environ["COSPARSE_KERNEL_REPORT"], "w") as f:
        json.dump(report, f)
