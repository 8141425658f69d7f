"""The hardware generator: NetSpec + HwConfig -> Network, Verilog and a summary.

The same generator builds the dense baseline (``dense=True``): the NetSpec
is unpacked to one kernel per group (``n = 1``, every slot of every kernel
present, zeros included) and every Sparsifier and k-WTA passes zeros, so
the baseline computes the same integers while multiplying every weight by
every input. Speed-ups are then ratios of two designs from one generator.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..sw import golden
from ..sw.netspec import Conv2d, NetSpec, random_inputs
from .config import HwConfig
from .engine.weights import kernel_id_bits
from .top import Network, plan

__all__ = ["unpack_dense", "generate", "write_verilog", "summary", "TOP_NAME"]

#: Module (and file) name of the generated top level.
TOP_NAME = "cosparse_top"


def unpack_dense(spec: NetSpec) -> NetSpec:
    """The same network with every packed layer as ``n = 1``: one dense kernel per group.

    Every slot belongs to its kernel (id 0), zero weights included, so the
    dense engine multiplies all ``out_channels x fan_in`` weights.
    """
    layers = []
    for layer in spec.layers:
        if hasattr(layer, "dense_weight"):
            weights = layer.dense_weight()
            layer = dataclasses.replace(layer, n=1, weights=weights,
                                        kernel_ids=np.zeros(weights.shape, np.uint8))
        layers.append(layer)
    return NetSpec(name=f"{spec.name}-dense", input=spec.input, layers=tuple(layers),
                   classes=spec.classes)


def _prepare(spec, config, dense):
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    built = unpack_dense(spec) if dense else spec
    config = HwConfig.default_for(built) if config is None else config
    config.validate(built)
    return built, config


def generate(spec: NetSpec, config: HwConfig | None = None, dense: bool = False) -> Network:
    """Build the :class:`Network` of ``spec`` (the dense baseline when ``dense``).

    ``config`` defaults to :meth:`HwConfig.default_for` (one lane per group);
    for ``dense`` it must describe the unpacked network (``out_channels``
    groups per layer).
    """
    built, config = _prepare(spec, config, dense)
    return Network(built, config, skip_zeros=not dense)


def write_verilog(network: Network, out_dir, name: str = TOP_NAME) -> Path:
    """Convert ``network`` to Verilog in ``out_dir/<name>.v`` and return the path."""
    from amaranth.back import verilog

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.v"
    path.write_text(verilog.convert(network, name=name))
    return path


def summary(spec: NetSpec, config: HwConfig | None = None, dense: bool = False,
            inputs=None) -> dict:
    """Per engine: shapes, packing, parallelism, memories and the analytical cycle model.

    Cycles per input of an engine: accumulate ``work / G * passes`` (``work``
    = golden useful MACs, or packed MACs for the dense baseline, which skips
    nothing) plus a few cycles to swap buffers, while the drain of the
    previous input (one cycle per pre-pool output) overlaps; the engine's
    interval is the larger of the two. ``inputs`` (int8 batch) defaults to
    a few random inputs of the NetSpec's input range.
    """
    built, config = _prepare(spec, config, dense)
    x = random_inputs(spec, 4, seed=0) if inputs is None else inputs
    stats = {s.name: s for s in golden.run(built, x, keep_activations=False).stats}
    rows = []
    for stage, cfg in zip(plan(built), config.layers):
        layer = stage.layer
        positions = (int(np.prod(layer.out_shape[1:])) if isinstance(layer, Conv2d) else 1)
        passes = cfg.passes(layer.groups)
        work = stats[layer.name].packed_macs if dense else float(
            np.mean(stats[layer.name].useful_macs))
        accumulate = work / layer.groups * passes
        drain = positions * layer.out_channels
        rows.append({
            "name": layer.name, "kind": layer.kind, "in_shape": list(stage.in_shape),
            "out_shape": list(stage.out_shape), "pool": stage.pool,
            "kwta": None if stage.kwta is None else f"{stage.kwta.mode} k={stage.kwta.k}",
            "groups": layer.groups, "n": layer.n, "lanes": cfg.lanes, "passes": passes,
            "multipliers": cfg.lanes, "acc_bits": cfg.acc_bits,
            "weight_memory_bits": layer.fan_in * passes * cfg.lanes * (8 + kernel_id_bits(layer.n)),
            "accumulator_bits": 2 * cfg.lanes * passes * positions * layer.n * cfg.acc_bits,
            "accumulate_cycles": accumulate, "drain_cycles": drain,
            "cycles_per_input": max(accumulate + 4, drain),
        })
    interval = max(row["cycles_per_input"] for row in rows)
    return {"name": built.name, "dense": dense, "layers": rows,
            "initiation_interval": interval,
            "multipliers": sum(row["multipliers"] for row in rows),
            "weight_memory_bits": sum(row["weight_memory_bits"] for row in rows),
            "accumulator_bits": sum(row["accumulator_bits"] for row in rows)}
