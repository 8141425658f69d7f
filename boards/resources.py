"""Resources, instances per chip and full-chip throughput of a NetSpec's sparse and dense designs.

Both designs come from the same generator (``cosparse generate`` and
``cosparse generate --dense``: the ``Network`` top, ``cosparse_top``), are
synthesised by :func:`cosparse.boards.xilinx_synth.synthesise`, and are
fitted into 80% of a U250 (and of a ZU3EG) by :func:`cosparse.boards.devices.fit`.
Throughput per instance is the clock over the initiation interval of the
analytical model (hw/generate.py ``summary``), which cycle-accurate
simulation matches on the default network (1,757 cycles, docs/simulation.md);
the clock is an assumption (250 MHz) until a vendor timing report exists.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..sim.run import ASSUMED_CLOCK_HZ
from ..sw.netspec import NetSpec
from .devices import XCU250, XCZU3EG, fit
from .xilinx_synth import synthesise

__all__ = ["ASSUMED_CLOCK_HZ", "PUBLISHED", "design_resources", "resource_report"]


#: Numenta's published U250 figures (BACKGROUND.md): inputs/s and instances.
PUBLISHED = {
    "single": {"dense": 3_049, "sparse": 102_564, "ratio": 33.6},
    "full_chip": {"dense": 12_195, "sparse": 1_369_863, "ratio": 112.3,
                  "dense_instances": 4, "sparse_instances": 20},
}


def design_resources(spec: NetSpec, *, dense: bool, out, cache=None, log=None) -> dict:
    """Generate one design's Verilog into ``out``, synthesise it, fit it, and rate it.

    Verilog generation is skipped when ``out/cosparse_top.v`` was written for
    the same design (``out/design_key.txt`` holds the simulation cache's
    content hash of NetSpec, dense flag and generator source).
    """
    from ..hw.generate import TOP_NAME, generate, summary, write_verilog
    from ..sim.build import design_key

    out = Path(out)
    key = design_key(spec, dense=dense)
    verilog = out / f"{TOP_NAME}.v"
    key_path = out / "design_key.txt"
    start = time.perf_counter()
    if verilog.exists() and key_path.exists() and key_path.read_text() == key:
        generate_seconds = 0.0
        if log:
            log(f"{'dense' if dense else 'sparse'}: reusing {verilog}")
    else:
        if log:
            log(f"{'dense' if dense else 'sparse'}: generating Verilog")
        write_verilog(generate(spec, dense=dense), out)
        key_path.write_text(key)
        generate_seconds = time.perf_counter() - start
    model = summary(spec, dense=dense)
    used = synthesise(verilog, TOP_NAME, cache=cache, log=log).as_dict()
    per_instance = ASSUMED_CLOCK_HZ / model["initiation_interval"]
    chips = {}
    for name, device in (("u250", XCU250), ("zu3eg", XCZU3EG)):
        fitted = fit(used, device)
        fitted["inputs_per_second"] = fitted["instances"] * per_instance
        chips[name] = fitted
    return {"dense": dense, "verilog": str(verilog), "verilog_bytes": verilog.stat().st_size,
            "generate_seconds": generate_seconds, "utilisation": used,
            "initiation_interval": model["initiation_interval"],
            "bottleneck": model["bottleneck"], "multipliers": model["multipliers"],
            "inputs_per_second": per_instance, "chips": chips}


def resource_report(spec: NetSpec, out, *, cache=None, log=None) -> dict:
    """:func:`design_resources` of the sparse and the dense design, and their ratios."""
    out = Path(out)
    sparse = design_resources(spec, dense=False, out=out / "sparse", cache=cache, log=log)
    dense = design_resources(spec, dense=True, out=out / "dense", cache=cache, log=log)
    ratios = {"per_instance": sparse["inputs_per_second"] / dense["inputs_per_second"]}
    for chip in ("u250", "zu3eg"):
        d = dense["chips"][chip]["inputs_per_second"]
        ratios[f"full_chip_{chip}"] = (sparse["chips"][chip]["inputs_per_second"] / d
                                       if d else None)
    return {"netspec": spec.name, "assumed_clock_hz": ASSUMED_CLOCK_HZ, "fraction": 0.8,
            "devices": {"u250": asdict(XCU250), "zu3eg": asdict(XCZU3EG)},
            "sparse": sparse, "dense": dense, "sparse_over_dense": ratios,
            "published": PUBLISHED}
