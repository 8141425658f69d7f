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

from ..sw import golden, progress
from ..sw.netspec import Conv2d, NetSpec, random_inputs
from ..sw.golden import validate_inputs
from .config import HwConfig
from .convert import to_verilog
from .engine.weights import id_block, kernel_id_bits
from .kwta.global_ import scan_cycles
from .kwta.global_wide import wide_scan_cycles
from .kwta.local import search_cycles
from .engine.conv import conv_tiling
from .engine.multiply import LATENCY as MULTIPLY_LATENCY
from .engine.router import LANE_LATENCY
from .engine.gather import gather_cycles, gather_writes
from .engine.window import window_cycles
from .top import Network, plan, position_major_input

__all__ = ["unpack_dense", "generate", "write_verilog", "summary", "stage_cycles", "TOP_NAME"]

#: Cycles an engine spends per input besides its work items: the multiply and
#: read-modify-write pipeline empties before the buffers swap (a ring: before its
#: last rows are final, hw/engine/ring.py ``SETTLE``, and the next input starts).
SWAP_CYCLES = MULTIPLY_LATENCY + 3

#: A linear engine's lane accumulators take one cycle more (hw/engine/router.py
#: ``LANE_LATENCY``, a read-modify-write pipelined over two cycles), so its buffers swap
#: one cycle later than a conv engine's.
LINEAR_SWAP_CYCLES = SWAP_CYCLES + LANE_LATENCY - 1

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
                                        kernel_ids=np.zeros(weights.shape, np.uint8),
                                        pattern="random")  # one kernel: nothing to arrange
        layers.append(layer)
    return NetSpec(name=f"{spec.name}-dense", input=spec.input, layers=tuple(layers),
                   classes=spec.classes)


def _prepare(spec, config, dense):
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    built = unpack_dense(spec) if dense else spec
    config = HwConfig.default_for(built, dense=dense) if config is None else config
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


def write_verilog(network: Network, out_dir, name: str = TOP_NAME, *,
                  emit_src: bool = False) -> Path:
    """Convert ``network`` to Verilog in ``out_dir/<name>.v`` and return the path.

    ``emit_src`` keeps the ``(* src *)`` attributes that name the Python line of every
    cell (``cosparse.hw.convert``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.v"
    text = to_verilog(network, name, emit_src=emit_src)  # verilog.convert, reporting its stages (sw/progress.py)
    with progress.stage("write"):
        path.write_text(text)
    return path


def _kernel_ring_cycles(x: np.ndarray, items: np.ndarray, layer, tiling, pool: int,
                        dense: bool) -> np.ndarray:
    """Cycles per input of a conv engine with kernel-addressed ring accumulators.

    Its drain reads ``positions x passes x n`` sums alongside the
    accumulation, each pool-row group as soon as it is final, so an input
    takes its work items plus the drain of the groups that become final only
    after its last beat (the rows the last input row reaches), or, when the
    drain is slower than the accumulation, the whole drain.
    """
    from .engine.ring import final_groups

    ho, wo = tiling.out_hw
    groups = ho // pool
    per_group = pool * wo * tiling.passes * layer.n
    final = final_groups(tuple(layer.in_shape), tiling, pool)
    sent = np.ones_like(x, dtype=bool) if dense else x != 0
    rows = sent.any(axis=(1, 3))  # (batch, H): rows with an input
    last = np.where(rows.any(axis=1), rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1), -1)
    tail = np.array([(groups - (final[y] if y >= 0 else 0)) * per_group for y in last])
    return np.maximum(items + tail, groups * per_group) + SWAP_CYCLES


def _conv_items(x: np.ndarray, tiling, dense: bool) -> np.ndarray:
    """Work items per input of a conv engine: per input sent, its tiles, times the passes.

    An input's tiles are those its row reaches times those its column reaches
    (:meth:`~.engine.tiling.Tiling.axis`), at least one item (an input that
    reaches no output, at stride above 1, still sends one)."""
    sent = np.ones(x.shape, bool) if dense else x != 0
    per_position = sent.sum(axis=1).astype(np.int64)  # [B, H, W]
    ty = np.array([len(t) for t in tiling.rows_axis(x.shape[2]).tiles], np.int64)
    tx = np.array([len(t) for t in tiling.cols_axis(x.shape[3]).tiles], np.int64)
    items = np.maximum(ty, 1)[:, None] * np.maximum(tx, 1)[None, :]
    return (per_position * items).sum(axis=(1, 2)) * tiling.passes


def _emit_cycles(out: np.ndarray, dense: bool, floor: int = 1) -> np.ndarray:
    """Cycles per input of a k-WTA / Sparsifier taking one position per beat: each position
    costs one cycle per beat it sends, at least ``floor`` (a local k-WTA's search)."""
    beats = np.full(out.shape[:1] + out.shape[2:], out.shape[1]) if dense else \
        np.count_nonzero(out, axis=1)
    return np.maximum(beats, floor).sum(axis=(1, 2))


def weight_memory_bits(layer, passes: int, lanes: int, copies: int, window: bool) -> int:
    """Bits of a packed layer's weight memories: weights and kernel ids.

    Per slot, pass, lane and stored copy a ``weight_bits`` weight and,
    unless the layer's ``block`` pattern lets a scatter engine store one id
    per block (:func:`~.engine.weights.id_block`), a ``kernel_id_bits(n)``
    id; with blocks, one id per block of ``K`` channels (inputs) instead.
    A window engine keeps ids as constants in its adder trees: counted per
    slot, as before.
    """
    words = passes * lanes * copies
    block = 1 if window else id_block(layer)
    units = layer.fan_in if block == 1 else layer.structure.unit_count(layer.fan_in,
                                                                       layer.pattern_kernel)
    return words * (layer.fan_in * layer.weight_bits + units * kernel_id_bits(layer.n))


def _wide_kwta_cycles(values: np.ndarray, k: int, width: int, frac_bits: int,
                      dense: bool) -> np.ndarray:
    """Cycles per input of a wide global k-WTA (:func:`~.kwta.global_wide.wide_scan_cycles`)
    on its input ``values``: the ``k`` winners (largest first, lower index on ties) per
    word of ``width`` values, every value for the dense baseline, and the threshold."""
    flat = values.reshape(len(values), -1).astype(np.int64)
    size = flat.shape[1]
    words = -(-size // width)
    cycles = []
    for row in flat:
        order = np.argsort(-row, kind="stable")[:k]
        sent = np.arange(size) if dense else order
        per_word = np.bincount(sent // width, minlength=words)
        cycles.append(wide_scan_cycles(size, width, frac_bits, per_word, row[order[-1]]))
    return np.array(cycles)


def stage_cycles(built: NetSpec, stage, index: int, cfg, x_in: np.ndarray, acts: dict,
                 dense: bool = False, beat: int = 1) -> dict:
    """Per-input cycles of packed layer ``index``'s engine (``stage`` of :func:`plan`) and of
    the unit after it, as :func:`summary` models them, one entry per input of ``x_in``.

    Returns ``accumulate`` and ``cycles`` (arrays, the engine's work items and its
    interval per input), ``drain`` (cycles, data-independent), ``after`` (the k-WTA or
    Sparsifier after it: an array, a constant, or None after the last engine) and
    ``memory`` (kernel-addressed, weight copies, banks, depth). ``acts`` are the golden
    model's activations of the same inputs by layer name. The cost model
    (hw/cost.py) reads the distributions, the summary their means.
    """
    layer = stage.layer
    names = [l.name for l in built.layers]
    at = names.index(layer.name)
    ring = position_major_input(stage, index)
    passes = cfg.passes(layer.groups)
    batch = len(x_in)
    by_kernel, copies = False, 1
    if isinstance(layer, Conv2d) and cfg.engine == "window":
        # Output-stationary: no accumulators and no drain; the interval is the window
        # walk or the input's fill, whichever is slower (hw/engine/window.py).
        accumulate = np.full(batch, float(window_cycles(layer, stage.pool, passes, beat)))
        drain, banks, depth = 0, 0, 0
        cycles = accumulate
    elif isinstance(layer, Conv2d) and cfg.engine == "gather":
        # Output-stationary too: the walk or the writer, whichever is slower
        # (hw/engine/gather.py); weights in a ROM copied per (offset, winner) pair.
        accumulate = gather_cycles(layer, stage.pool, passes, cfg.offsets,
                                   gather_writes(x_in)).astype(float)
        drain, banks, depth = 0, 0, 0
        copies = cfg.offsets * stage.winners
        cycles = accumulate
    elif isinstance(layer, Conv2d):
        tiling = conv_tiling(layer, cfg, stage.pool, ring)
        items = _conv_items(x_in, tiling, dense)
        accumulate = items.astype(float)
        by_kernel = cfg.accumulators == "kernel"
        drain = int(np.prod(layer.out_shape[1:])) * passes * (layer.n if by_kernel else 1)
        banks, depth, copies = tiling.banks, tiling.depth, tiling.col_copies
        cycles = (_kernel_ring_cycles(x_in, items, layer, tiling, stage.pool, dense).astype(float)
                  if by_kernel else accumulate + drain + SWAP_CYCLES if ring
                  else np.maximum(accumulate + SWAP_CYCLES, drain))
    else:
        sent = x_in.reshape(batch, -1)
        accumulate = np.full(batch, float(sent.shape[1])) if dense \
            else np.count_nonzero(sent, axis=1).astype(float)
        accumulate = accumulate * passes
        drain = -(-layer.out_channels // cfg.width)
        banks, depth = 1, passes
        cycles = np.maximum(accumulate + LINEAR_SWAP_CYCLES, drain)
    # The stage's output: its last NetSpec layer (the k-WTA, else the pool, else itself).
    out = acts[names[at + (stage.pool > 1) + (stage.kwta is not None)]]
    if layer is built.packed_layers[-1]:
        after = None
    elif isinstance(layer, Conv2d):
        local = stage.kwta is not None and stage.kwta.mode == "local"
        floor = search_cycles(stage.kwta.frac_bits, cfg.search_bits) if local else 1
        after = _emit_cycles(out, dense, floor).astype(float)
    elif stage.kwta is not None and stage.kwta.mode == "global" and cfg.width > 1:
        after = _wide_kwta_cycles(acts[layer.name], stage.kwta.k, cfg.width,
                                  stage.kwta.frac_bits, dense).astype(float)
    elif stage.kwta is not None and stage.kwta.mode == "global":
        after = scan_cycles(int(np.prod(stage.out_shape)), stage.kwta.frac_bits)
    else:
        after = int(np.prod(stage.out_shape))
    return {"accumulate": accumulate, "drain": drain, "cycles": cycles, "after": after,
            "memory": (by_kernel, copies, banks, depth)}


def summary(spec: NetSpec, config: HwConfig | None = None, dense: bool = False,
            inputs=None) -> dict:
    """Per engine: shapes, packing, parallelism, memories and the analytical cycle model.

    Cycles per input of an engine (hw/engine/): ``accumulate`` = work items
    (conv: per input sent, the offset tiles it reaches, times the passes;
    linear: inputs sent times passes; the dense baseline sends zeros too)
    plus a few cycles to swap buffers; ``drain`` = one word per cycle (conv:
    pre-pool positions times passes) or ``width`` channels per cycle (linear:
    ``ceil(out_features / width)``, hw/engine/drain.py). The
    drain of one input overlaps the accumulation of the next, so the
    engine's interval is the larger. A conv engine with a row-window ring
    (position-major input, hw/engine/ring.py) has one buffer: its drain
    reads only in cycles the accumulation leaves a bank free and the next
    input waits for the last rows, so fed without a gap it takes at most
    ``accumulate + drain`` plus the same few cycles (fewer where inputs
    near the map's edge leave banks free, or gaps in its input let the
    drain in early). With kernel-addressed accumulators
    (hw/engine/kernel_ring.py) the drain reads ``n`` sums per position and
    pass through a port of its own, alongside the accumulation: an input
    takes ``max(accumulate + tail, drain)`` plus the swap, ``tail`` being the
    reads of the pool-row groups the input's last row leaves unfinished
    (:func:`_kernel_ring_cycles`). The unit after each engine (``after``:
    a k-WTA or Sparsifier) has its own interval: one cycle per beat sent and
    at least one per position for a conv output (a local k-WTA: at least its
    search, :func:`~.kwta.local.search_cycles`, 5 cycles for int8 values,
    ``1 + ceil((8 + f) / b)`` with ``f`` fraction bits and ``b`` the config's
    ``search_bits``, 2 or 3), ``2**(8 + f) + S + 1``
    for a global k-WTA (:func:`~.kwta.global_.scan_cycles`: ``S + 257`` for
    int8); after a linear engine of drain ``width`` ``w > 1`` the wide global
    k-WTA's ``max(ceil(S/w), scan + E + 5)``: ``scan`` the coarse and fine
    bins from the top down to the threshold's, at most ``2**c + 2**(8+f-c)``
    with ``c = ceil((8+f)/2)`` (32 for int8), ``E`` = sum over its words of
    ``max(1, winners in the word)``
    (:func:`~.kwta.global_wide.wide_scan_cycles`: at most ``S/w + k + 37``
    for int8); ``S`` for a scalar Sparsifier; the input Sparsifier takes one
    feature per cycle (``input_width`` features with a window engine first:
    ``C*H*W / input_width``). The network's initiation interval is the largest of
    them all. A window engine (hw/engine/window.py, ``engine = "window"``)
    has no accumulators and no drain: ``accumulate`` is
    :func:`~.engine.window.window_cycles`, ``max(H*W / input_width, pooled rows x (max(P,
    Wc + 2) + (pooled columns - 1) x max(P, step + 2)))`` with ``P =
    pool*pool*passes`` cycles per pooled output, ``Wc = (pool - 1)*S + K``
    columns loaded at the start of a row and ``step = min(pool*S, Wc)`` for
    each next pooled output, whatever the activations. A gather engine
    (hw/engine/gather.py, ``engine = "gather"``) has none either: ``accumulate``
    is :func:`~.engine.gather.gather_cycles`, ``max(writes, H_out*W_out x passes x
    ceil(K*K / offsets))``, ``writes`` being per input position ``max(1, beats)``.
    ``inputs`` (int8 batch) defaults to a few random inputs of the NetSpec's input range.
    """

    built, config = _prepare(spec, config, dense)
    x = random_inputs(spec, 4, seed=0) if inputs is None else inputs
    result = golden.run(built, x)
    acts = result.activations
    stats = {st.name: st for st in result.stats}
    names = [layer.name for layer in built.layers]
    rows = []
    input_cycles = int(np.prod(spec.input.shape)) // config.input_width
    for index, (stage, cfg) in enumerate(zip(plan(built), config.layers)):
        layer = stage.layer
        ring = position_major_input(stage, index)
        at = names.index(layer.name)
        x_in = validate_inputs(built, x) if at == 0 else acts[names[at - 1]]
        passes = cfg.passes(layer.groups)
        window = isinstance(layer, Conv2d) and cfg.engine in ("window", "gather")
        per_input = stage_cycles(built, stage, index, cfg, x_in, acts, dense,
                                 config.input_width if index == 0 else 1)
        accumulate, drain = float(np.mean(per_input["accumulate"])), per_input["drain"]
        cycles = float(np.mean(per_input["cycles"]))
        after = per_input["after"]
        after = None if after is None else float(np.mean(after)) \
            if isinstance(after, np.ndarray) else after
        by_kernel, copies, banks, depth = per_input["memory"]
        if window:
            ring = False
        rows.append({
            "name": layer.name, "kind": layer.kind, "in_shape": list(stage.in_shape),
            "out_shape": list(stage.out_shape), "pool": stage.pool,
            "kwta": None if stage.kwta is None else f"{stage.kwta.mode} k={stage.kwta.k}",
            "engine": cfg.engine if isinstance(layer, Conv2d) else "linear",
            "groups": layer.groups, "n": layer.n, "lanes": cfg.lanes, "offsets": cfg.offsets,
            "width": cfg.width, "search_bits": cfg.search_bits,
            "passes": passes, "multipliers": cfg.multipliers(layer, stage.winners),
            "acc_bits": cfg.acc_bits,
            "nonzero_inputs": float(np.mean(stats[layer.name].nonzero_inputs)),
            "weight_copies": copies,
            "weight_memory_bits": weight_memory_bits(layer, passes, cfg.lanes, copies, window),
            "ring": ring,
            "accumulators": "none" if window else cfg.accumulators if isinstance(layer, Conv2d)
            else "lane",
            # Kernel-addressed: the sums and, beside them, their bases.
            "accumulator_bits": (2 if by_kernel or not ring else 1) * banks * depth * cfg.lanes
            * layer.n * cfg.acc_bits,
            "accumulate_cycles": accumulate, "drain_cycles": drain,
            "cycles_per_input": cycles,
            "after_cycles": after,
        })
    intervals = [("input", input_cycles)]
    for row in rows:
        intervals.append((row["name"], row["cycles_per_input"]))
        if row["after_cycles"] is not None:
            intervals.append((f"after {row['name']}", row["after_cycles"]))
    bottleneck, interval = max(intervals, key=lambda item: item[1])
    return {"name": built.name, "dense": dense, "layers": rows, "input_cycles": input_cycles,
            "initiation_interval": interval, "bottleneck": bottleneck,
            "multipliers": sum(row["multipliers"] for row in rows),
            "weight_memory_bits": sum(row["weight_memory_bits"] for row in rows),
            "accumulator_bits": sum(row["accumulator_bits"] for row in rows)}
