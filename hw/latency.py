"""Latency of one input through a generated design, unit by unit (the cost model's latency).

:func:`~.cost.cycles` reports, beside the interval, the cycles from an input's
first beat on ``s_axis`` (:class:`~.axis_top.AxisNetwork`) to its result, the
pipeline otherwise empty and just out of reset: what the cocotb bench
(sim/bench_network.py) and Amaranth's simulator (sim/pysim.py) measure. The
model follows the input's first and last beat through every unit, each unit
adding its own pipeline depth (read from the unit's constants where it has
one) and its own work:

* the input: ``AXI_LATENCY`` (the beat register), then the input Sparsifier
  (``SPARSIFIER_LATENCY``, one feature a cycle) or, with ``input_width`` above 1,
  the window engine directly; a FIFO (``FIFO_LATENCY``) before every engine;
* a scatter conv engine with double-buffered sums or a linear engine: its last
  work item enters the multiplier at ``D = max(last + 1, first + accumulate)``
  (a linear engine: ``last + passes``), the buffers swap ``SWAP_CYCLES``
  (``LINEAR_SWAP_CYCLES``) later, the drain reads (one cycle, two from
  kernel-addressed sums) and requantises (``requant.LATENCY``), one word a cycle;
* a ring conv engine (position-major input): the groups of ``pool`` output rows
  that the input's last row leaves unfinished are drained after its last item
  settles (``ring.SETTLE``), then requantised; with word-addressed sums the
  drain reads only in cycles the scatter leaves a bank free, so an engine fed
  without a gap ends no earlier than ``first + accumulate + drain``; with
  kernel-addressed sums its own read port drains each group once it is final;
* a window engine: it walks the pooled rows as the line buffer fills, so its
  last output follows the later of the whole walk after the first rows
  (``first + fill + walk``) and the last row's walk after the input's end, then
  its products, adder tree (``levels``), requantiser and pool;
* a gather engine: as a window engine, its fill the writes (a cycle per beat,
  one per empty position) of the first pooled row's input rows;
* a local k-WTA: per position a load, ``steps`` search steps of ``_RING``
  stages, the ranking pipeline and the emitter (``LOCAL_KWTA_LATENCY``
  besides the steps), then one beat per winner;
* a Sparsifier after a conv engine: ``VECTOR_SPARSIFIER_LATENCY``, one beat per
  non-zero;
* a global k-WTA: the whole input, then its scan of ``2**(8 + f)`` bins and
  the emit pass in flat order up to the last winner; a wide one: its
  :func:`~.kwta.global_wide.wide_scan_cycles`, and after reset it first wipes
  its histograms (``2**(8 + f)`` cycles), which the first input waits for;
* the argmax: ``ARGMAX_LATENCY`` after the last logit.

Each stream is followed by its first beat, its last beat and its final burst
(the beats of its last positions, which the unit before sends as fast as it
can: a ring's last groups, a drain). A unit never runs faster than its own
work (``first + work`` and ``burst start + the burst's work`` bound its last
beat), so a slow unit downstream sets the pace as backpressure does. The
formulas and their check against simulation are in docs/hardware.md, "Cost
model".
"""

from __future__ import annotations

import numpy as np

from ..sw.netspec import Conv2d
from .engine.conv import conv_tiling
from .engine.kernel_ring import READ_LATENCY
from .engine.ring import SETTLE, final_groups
from .engine.window import window_geometry
from .generate import LINEAR_SWAP_CYCLES, SWAP_CYCLES, stage_cycles
from .kwta.global_ import bins
from .kwta.local import _RING, _steps, search_cycles
from .requant import LATENCY as REQUANT_LATENCY
from .top import position_major_input

__all__ = ["stage_timing", "latency", "AXI_LATENCY", "SPARSIFIER_LATENCY", "FIFO_LATENCY",
           "ARGMAX_LATENCY", "LOCAL_KWTA_LATENCY", "VECTOR_SPARSIFIER_LATENCY",
           "GLOBAL_KWTA_LATENCY", "WIDE_KWTA_LATENCY", "WINDOW_LATENCY", "RING_DRAIN_LATENCY"]

#: AxisNetwork's input beat register: a feature reaches the network a cycle after its beat.
AXI_LATENCY = 1
#: The input Sparsifier: coordinate counter, Compactor hold and output register.
SPARSIFIER_LATENCY = 3
#: amaranth.lib.fifo.SyncFIFOBuffered: a beat written is readable two cycles later.
FIFO_LATENCY = 2
#: The argmax registers the logits and then the class.
ARGMAX_LATENCY = 2
#: A local k-WTA besides its search steps: the load, the four-stage ranking pipeline, the
#: emitter's register and the Compactor's hold (hw/kwta/local.py).
LOCAL_KWTA_LATENCY = 8
#: A Sparsifier after a conv engine: PositionEmitter and Compactor (hw/sparsify.py).
VECTOR_SPARSIFIER_LATENCY = 5
#: A global k-WTA besides its bins and the values emitted: the registered count, the
#: two-stage scan and the buffer read (hw/kwta/global_.py).
GLOBAL_KWTA_LATENCY = 6
#: A wide global k-WTA besides :func:`~.kwta.global_wide.wide_scan_cycles`: the emitter and
#: its Compactor.
WIDE_KWTA_LATENCY = 4
#: A window engine besides its walk and its adder tree: the line-buffer write, the column
#: loader, the window and product registers, the requantiser, the output slice
#: (hw/engine/window.py, position_out.py).
WINDOW_LATENCY = 4 + REQUANT_LATENCY
#: A gather engine besides its walk and its adder tree: the address, line-buffer read, pair,
#: weight-ROM read and product registers, the accumulator, the credit FIFO, the
#: requantiser and the output slice (hw/engine/gather.py, position_out.py).
GATHER_LATENCY = 10 + REQUANT_LATENCY
#: The drain of a conv engine's ring after its last words are read: the read, the
#: requantiser and the output register.
RING_DRAIN_LATENCY = 2 + REQUANT_LATENCY


def _from_end(per_position: np.ndarray) -> np.ndarray:
    """[B, P] per-position amounts -> [B, P + 1]: the sum over the last ``p`` positions."""
    flat = per_position.reshape(len(per_position), -1).astype(float)
    return np.concatenate([np.zeros((len(flat), 1)), np.cumsum(flat[:, ::-1], axis=1)], axis=1)


def _work_per_position(x_in: np.ndarray, layer, cfg, stage, index: int) -> np.ndarray:
    """[B, positions] cycles an engine's scatter spends on each input position (raster order
    of a (C, H, W) input, all channels; one position for a 1-D input)."""
    passes = cfg.passes(layer.groups)
    if not isinstance(layer, Conv2d):
        sent = np.count_nonzero(x_in.reshape(len(x_in), x_in.shape[1], -1), axis=1) \
            if x_in.ndim == 4 else np.count_nonzero(x_in, axis=1)[:, None]
        return sent * passes
    sent = np.count_nonzero(x_in, axis=1)  # [B, H, W]
    if cfg.engine == "window":
        return np.ones_like(sent)
    if cfg.engine == "gather":
        return np.maximum(sent, 1)  # a cycle per beat written, one per empty position
    tiling = conv_tiling(layer, cfg, stage.pool, position_major_input(stage, index))
    ty = np.array([len(t) for t in tiling.rows_axis(x_in.shape[2]).tiles])
    tx = np.array([len(t) for t in tiling.cols_axis(x_in.shape[3]).tiles])
    return sent * (np.maximum(ty, 1)[:, None] * np.maximum(tx, 1)[None, :]) * passes


def stage_timing(prof, index: int, cfg, input_width: int = 1, cycles=None) -> dict:
    """What :func:`latency` needs of packed layer ``index`` with ``cfg`` on ``prof``'s inputs:
    the engine's kind and its work (``accumulate`` per input, ``work`` of its last input
    positions), its drain and pipeline, and the unit after it. ``cycles``: the layer's
    :func:`~.generate.stage_cycles` if already computed."""
    stage = prof.stages[index]
    layer = stage.layer
    spec = prof.spec
    names = [l.name for l in spec.layers]
    at = names.index(layer.name)
    x_in = prof.x_in[index]
    c = cycles if cycles is not None else stage_cycles(
        spec, stage, index, cfg, x_in, prof.acts, beat=input_width if index == 0 else 1)
    n = len(x_in)
    passes = cfg.passes(layer.groups)
    t = {"accumulate": np.asarray(c["accumulate"], float), "passes": passes,
         "drain": float(c["drain"]), "fifo": cfg.fifo_depth,
         "work": _from_end(_work_per_position(x_in, layer, cfg, stage, index))}
    if isinstance(layer, Conv2d):
        positions = stage.out_shape[1] * stage.out_shape[2]
        per_position = float(stage.pool * stage.pool * passes)  # drain words per output
    if isinstance(layer, Conv2d) and cfg.engine == "window":
        geometry = window_geometry(layer, stage.pool)
        _, ho, wo = layer.out_shape
        _, h, w = layer.in_shape
        per = stage.pool * stage.pool * passes
        first_row = max(per, geometry["cols"] + 2)
        row = first_row + (wo // stage.pool - 1) * max(per, geometry["step"] + 2)
        beat = input_width if index == 0 else 1
        levels = (layer.kernel * layer.kernel).bit_length()  # K*K products and the bias
        t.update(kind="window", fill=min(h, geometry["rows"]) * w / beat,
                 walk=float((ho // stage.pool) * row), row=float(row),
                 first_row=float(first_row), row_positions=stage.out_shape[2],
                 pipe=float(WINDOW_LATENCY + levels + (2 if stage.pool > 1 else 0)))
    elif isinstance(layer, Conv2d) and cfg.engine == "gather":
        # The window engine's timing: the walk follows the line buffer's rows.
        rows = window_geometry(layer, stage.pool)["rows"]
        per = stage.pool * stage.pool * passes * -(-layer.kernel ** 2 // cfg.offsets)
        row = stage.out_shape[2] * per
        writes = np.maximum(np.count_nonzero(x_in, axis=1), 1)  # [B, H, W]
        levels = (cfg.offsets * stage.winners - 1).bit_length()
        t.update(kind="window", fill=writes[:, :rows].sum(axis=(1, 2)).astype(float),
                 walk=float(stage.out_shape[1] * row), row=float(row), first_row=float(per),
                 row_positions=stage.out_shape[2],
                 pipe=float(GATHER_LATENCY + levels + (2 if stage.pool > 1 else 0)))
    elif isinstance(layer, Conv2d) and position_major_input(stage, index):
        tiling = conv_tiling(layer, cfg, stage.pool, True)
        final = final_groups(stage.in_shape, tiling, stage.pool)
        groups = tiling.out_hw[0] // stage.pool
        by_kernel = cfg.accumulators == "kernel"
        words = per_position * (layer.n if by_kernel else 1)
        rows = np.count_nonzero(x_in, axis=1).sum(axis=2)  # [B, H] beats per input row
        row_work = _work_per_position(x_in, layer, cfg, stage, index).sum(axis=2)  # [B, H]
        pending = np.zeros(n)
        # Per group, the share of the input's work done before a beat makes it final (1: at
        # the input's last item).
        share = np.ones((n, groups))
        for b in range(n):
            seen = np.nonzero(rows[b])[0]
            last_row = int(seen[-1]) if len(seen) else 0
            pending[b] = groups - final[last_row]
            total = max(1.0, float(row_work[b].sum()))
            for g in range(groups):
                later = [y for y in seen if final[y] >= g + 1]
                if later:
                    share[b, g] = row_work[b, :later[0]].sum() / total
        t.update(kind="kernel_ring" if by_kernel else "ring", words=words,
                 pending=pending, share=share,
                 group_words=words * stage.out_shape[2], group_positions=stage.out_shape[2])
    elif isinstance(layer, Conv2d):
        read = READ_LATENCY if cfg.accumulators == "kernel" else 1
        t.update(kind="buffered", pipe=float(SWAP_CYCLES + read + REQUANT_LATENCY),
                 pool_wait=per_position - 1, positions=positions,
                 pool_out=1.0 if stage.pool > 1 else 0.0)
    else:
        t.update(kind="linear", pipe=float(LINEAR_SWAP_CYCLES + 1 + (
            REQUANT_LATENCY if layer.requant is not None else 0)))
    # The unit after the engine.
    out = prof.acts[names[at + (stage.pool > 1) + (stage.kwta is not None)]]
    if layer is spec.packed_layers[-1]:
        t["after"] = None
    elif isinstance(layer, Conv2d):
        beats = np.maximum(np.count_nonzero(out, axis=1), 1).reshape(n, -1)
        t.update(beats=_from_end(beats), last_beats=beats[:, -1].astype(float))
        if stage.kwta is not None and stage.kwta.mode == "local":
            steps = _steps(stage.kwta.frac_bits, cfg.search_bits)
            t.update(after="local", fixed=float(_RING * steps + LOCAL_KWTA_LATENCY),
                     accept=float((positions - 1) * (search_cycles(stage.kwta.frac_bits,
                                                                   cfg.search_bits) - 1)))
        else:
            t.update(after="sparsifier", fixed=float(VECTOR_SPARSIFIER_LATENCY),
                     accept=float(positions - 1))
    elif stage.kwta is not None and stage.kwta.mode == "global":
        size = int(np.prod(stage.out_shape))
        flat = out.reshape(n, -1)
        first = np.array([np.flatnonzero(r)[0] if r.any() else size - 1 for r in flat], float)
        last = np.array([np.flatnonzero(r)[-1] if r.any() else size - 1 for r in flat], float)
        beats = np.maximum(np.count_nonzero(flat, axis=1), 1).astype(float)
        if cfg.width > 1:
            t.update(after="wide", scan=np.asarray(c["after"], float), out_beats=beats,
                     wipe=float(bins(stage.kwta.frac_bits)),
                     accept=float(-(-size // cfg.width) - 1))
        else:
            t.update(after="global", bins=float(bins(stage.kwta.frac_bits)), first=first,
                     last=last, accept=float(size - 1))
    else:  # a Sparsifier after a linear engine: one value a cycle in
        size = int(np.prod(stage.out_shape))
        beats = np.maximum(np.count_nonzero(out.reshape(n, -1), axis=1), 1)[:, None]
        t.update(after="sparsifier", fixed=float(VECTOR_SPARSIFIER_LATENCY), beats=_from_end(beats),
                 last_beats=np.ones(n), accept=float(size - 1))
    return t


def _take(table: np.ndarray, count) -> np.ndarray:
    """``table[b, count[b]]`` per input, ``count`` clipped to the table."""
    count = np.clip(np.broadcast_to(np.asarray(count, int), (len(table),)), 0,
                    table.shape[1] - 1)
    return table[np.arange(len(table)), count]


def latency(prof, timings, input_width: int = 1, fifo_depth: int = 4) -> float:
    """Cycles from one input's first beat to its result (module docstring), the mean over
    ``prof``'s inputs; ``timings`` holds :func:`stage_timing` of every packed layer,
    ``fifo_depth`` is the config's (for the layers that do not set their own).

    Each stream between units is followed by its first beat, its last beat and its final
    burst: the beats of its last ``burst`` positions, which the unit before sends from
    ``burst_start`` on as fast as it can (a ring's last groups, a drain); the unit after
    it cannot finish before it has worked through them.
    """
    n = prof.inputs
    size = float(np.prod(prof.spec.input.shape))
    x = prof.x_in[0].reshape(n, -1)
    if input_width > 1:
        first = np.full(n, float(AXI_LATENCY))
        last = first + size / input_width - 1
    else:
        window_first = timings[0]["kind"] == "window"
        # The Compactor sends a non-zero once the next one (or the end) is known.
        second = np.array([1.0 if window_first else
                           (np.flatnonzero(r)[1] if np.count_nonzero(r) > 1 else size - 1)
                           for r in x])
        base = AXI_LATENCY + SPARSIFIER_LATENCY
        first = base - 1 + second
        last = np.full(n, base + size - 1)
    burst_start, burst = first, np.zeros(n, int)
    for t in timings:
        depth = fifo_depth if t["fifo"] is None else t["fifo"]
        if depth:
            first, last = first + FIFO_LATENCY, last + FIFO_LATENCY
            burst_start = burst_start + FIFO_LATENCY
        kind, acc = t["kind"], t["accumulate"]
        work = burst_start + _take(t["work"], burst)
        if kind == "linear":
            done = np.maximum.reduce([last + t["passes"], first + acc, work])
            out_first = done + t["pipe"]
            out_last = out_first + t["drain"] - 1
            burst_start, burst = out_first, np.ones(n, int)
        elif kind == "buffered":
            done = np.maximum.reduce([last + 1, first + acc, work])
            out_first = done + t["pipe"] + t["pool_wait"]
            out_last = done + t["pipe"] + t["drain"] - 1 + t["pool_out"]
            burst_start, burst = out_first, np.full(n, t["positions"])
        elif kind in ("ring", "kernel_ring"):
            words = t["words"]
            tail = t["pending"] * words
            done = np.maximum.reduce([last + 1, first + acc, work])
            if kind == "ring":
                # The drain reads only in cycles the scatter leaves a bank free: fed without
                # a gap, the engine takes its accumulate plus its drain.
                end = np.maximum(done + tail, first + acc + t["drain"])
            else:
                # Its own read port drains each group, in order, once it is final.
                groups = t["share"].shape[1]
                final = np.where(t["share"] < 1, first[:, None] + acc[:, None] * t["share"],
                                 done[:, None])
                end = (final + t["group_words"] * (groups - np.arange(groups))).max(axis=1)
            out_last = end + SETTLE + RING_DRAIN_LATENCY
            burst_start = out_last - tail + words
            burst = (t["pending"] * t["group_positions"]).astype(int)
            out_first = np.minimum(burst_start, first + acc * t["share"][:, 0] + SETTLE
                                   + words + RING_DRAIN_LATENCY)
        else:  # window
            out_last = np.maximum(first + t["fill"] + t["walk"], last + 1 + t["row"]) + t["pipe"]
            out_first = np.minimum(out_last, first + t["fill"] + t["first_row"] + t["pipe"])
            burst_start, burst = out_last - t["row"], np.full(n, t["row_positions"])
        after = t["after"]
        if after is None:
            return float(np.mean(out_last + ARGMAX_LATENCY))
        if after in ("local", "sparsifier"):
            in_last = np.maximum(out_last, out_first + t["accept"])
            first = out_first + t["fixed"]
            burst_start = burst_start + t["fixed"]
            last = np.maximum.reduce([in_last + t["fixed"] + t["last_beats"] - 1,
                                      first + t["beats"][:, -1] - 1,
                                      burst_start + _take(t["beats"], burst) - 1])
        elif after == "global":
            in_last = np.maximum(out_last, out_first + t["accept"])
            first = in_last + t["bins"] + t["first"] + GLOBAL_KWTA_LATENCY
            last = in_last + t["bins"] + t["last"] + GLOBAL_KWTA_LATENCY
            burst_start, burst = first, np.ones(n, int)
        else:  # wide
            out_first = np.maximum(out_first, t["wipe"])
            out_last = np.maximum(out_last, out_first + t["accept"])
            last = out_last + t["scan"] + WIDE_KWTA_LATENCY
            first = last - (t["out_beats"] - 1)
            burst_start, burst = first, np.ones(n, int)
    raise ValueError("the last packed layer must be a linear engine")
