"""Name the first diverging layer: replay every unit of the pipeline on its golden input.

The Network exposes no internal activations, so when a whole-network
simulation (:mod:`cosparse.sim.bench_network`) disagrees with the golden
model, :func:`localise` rebuilds the units the Network is made of (the same
choices as ``hw/top.py: Network.elaborate``) and runs each one alone in
Amaranth's simulator, fed with the *golden* activations of the layer before
it, comparing what it emits with the golden activations of its own layer:

    input sparsifier  x                      -> sparse x
    engine e          golden input of e      -> golden output of its layer
                                                (of the fused pool, when there is one)
    k-WTA/sparsifier  golden engine output   -> golden k-WTA output (or the same tensor)
    argmax            golden logits          -> golden class

Each unit sees exactly the golden input, so the first unit whose output
differs is where the hardware first departs from the golden model, whatever
happens downstream. A unit that stops taking input or emitting output within
its cycle budget (20 x the analytical model's cycles, plus a margin) is
reported as hung. Sparse streams are compared as tensors (coordinates and
values, any order the unit chooses); ``last`` must close each one.

Speed: Amaranth's Python simulator, one input, one unit at a time; about
seconds per unit on the random test networks, minutes on GSC-sized layers.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from ..sw import golden
from ..sw.netspec import NetSpec

__all__ = ["localise", "replay_units"]

#: Cycles every unit gets on top of 20 x its modelled cycles.
MARGIN_CYCLES = 5000


def _sparse_beats(t: np.ndarray, dense: bool, position_major: bool = False) -> list:
    """Beats of hw/layouts.py's sparse stream for one tensor, flat order (position-major:
    raster order of positions, channels ascending within one, as a k-WTA emits them).

    A conv engine with a ring needs position-major beats, others accept any
    order; ``dense`` sends every value, zeros included, as the dense
    baseline's sparsifiers and k-WTAs do.
    """
    view = t.transpose(1, 2, 0) if position_major else t
    coords = [tuple(map(int, c)) for c in (np.argwhere(np.ones_like(view, bool)) if dense
                                           else np.argwhere(view != 0))]
    if position_major:
        coords = [(c, y, x) for y, x, c in coords]
    if not coords:
        coords = [(0,) * t.ndim]
    beats = []
    for i, coord in enumerate(coords):
        beat = {"value": int(t[coord]), "last": int(i == len(coords) - 1)}
        beat.update(dict(zip(("c", "y", "x"), coord)) if t.ndim == 3 else {"index": coord[0]})
        beats.append(beat)
    return beats


def _dense_beats(t: np.ndarray, width: int = 1) -> list:
    """An engine's output in its stream form: (C, H, W) as one vector beat per position
    (raster order), (F,) as one value per beat, or ``width`` per beat (a wide drain; the
    last beat padded with zeros)."""
    if width > 1:
        flat = [int(v) for v in t.reshape(-1)]
        words = -(-len(flat) // width)
        flat += [0] * (words * width - len(flat))
        return [{"values": flat[w * width:(w + 1) * width], "last": int(w == words - 1)}
                for w in range(words)]
    if t.ndim == 3:
        positions = t.transpose(1, 2, 0).reshape(-1, t.shape[0])
        return [{"values": [int(v) for v in p], "last": int(i == len(positions) - 1)}
                for i, p in enumerate(positions)]
    flat = t.reshape(-1)
    return [{"value": int(v), "last": int(i == len(flat) - 1)} for i, v in enumerate(flat)]


def _run_unit(unit, beats: list, max_cycles: int, *, count: int | None = None):
    """Feed ``beats`` to ``unit.i`` and collect ``unit.o`` (output always ready) until
    ``count`` beats, or when ``count`` is None until a beat with ``last``.

    Returns ``(payloads, hung)``: ``hung`` names what did not finish within
    ``max_cycles`` (None when both sides finished).
    """
    sim = Simulator(unit)
    sim.add_clock(1e-6)
    state = {"out": [], "fed": 0, "done": False}

    async def producer(ctx):
        cycles = 0
        for payload in beats:
            ctx.set(unit.i.valid, 1)
            ctx.set(unit.i.payload, payload)
            while True:
                *_, ready = await ctx.tick().sample(unit.i.ready)
                cycles += 1
                if ready:
                    break
                if cycles > max_cycles or state["done"]:
                    return
            state["fed"] += 1
        ctx.set(unit.i.valid, 0)

    async def consumer(ctx):
        ctx.set(unit.o.ready, 1)
        cycles = 0
        async for *_, valid, payload in ctx.tick().sample(unit.o.valid, unit.o.payload):
            cycles += 1
            if valid:
                state["out"].append(payload)
                if (len(state["out"]) == count) if count is not None else payload.last:
                    state["done"] = True
                    return
            if cycles > max_cycles:
                return

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    hung = None
    if state["fed"] < len(beats):
        hung = f"took {state['fed']} of {len(beats)} input beats in {max_cycles} cycles"
    elif not state["done"]:
        hung = f"emitted {len(state['out'])} output beats in {max_cycles} cycles, no end"
    return state["out"], hung


def _from_dense(out: list, shape: tuple, width: int = 1) -> np.ndarray:
    """The tensor of an engine's dense output (``width > 1``: a linear engine's beats of
    ``width`` values, the last one padded)."""
    if width > 1:
        return np.array([int(v) for o in out for v in o.values], np.int64)[:int(np.prod(shape))]
    if len(shape) == 3:
        c, h, w = shape
        values = np.array([[int(v) for v in o.values] for o in out], np.int64)
        if values.shape != (h * w, c):
            return values  # wrong beat count: compared as a shape mismatch
        return values.reshape(h, w, c).transpose(2, 0, 1)
    return np.array([int(o.value) for o in out], np.int64)


def _from_sparse(out: list, shape: tuple):
    """Dense tensor of a sparse stream; plus a protocol problem, if any."""
    t = np.zeros(shape, np.int64)
    problem = None
    for i, o in enumerate(out):
        coord = (int(o.c), int(o.y), int(o.x)) if len(shape) == 3 else (int(o.index),)
        if any(v >= n for v, n in zip(coord, shape)):
            problem = problem or f"beat {i} has coordinates {coord} outside {shape}"
            continue
        if t[coord] != 0 and int(o.value) != 0:
            problem = problem or f"beat {i} repeats coordinates {coord}"
        t[coord] = int(o.value)
    lasts = [i for i, o in enumerate(out) if o.last]
    if lasts != [len(out) - 1]:
        problem = problem or f"last set on beats {lasts} of {len(out)}"
    return t, problem


def _first_difference(want: np.ndarray, got: np.ndarray):
    """``(flat index, coordinates, expected, got)`` of the first difference, or None."""
    want = np.asarray(want, np.int64)
    got = np.asarray(got, np.int64)
    if want.shape != got.shape:
        return {"index": None, "coordinates": None, "expected": f"shape {want.shape}",
                "got": f"shape {got.shape}"}
    diff = np.flatnonzero(want.reshape(-1) != got.reshape(-1))
    if not len(diff):
        return None
    i = int(diff[0])
    coord = [int(v) for v in np.unravel_index(i, want.shape)]
    return {"index": i, "coordinates": coord, "expected": int(want.reshape(-1)[i]),
            "got": int(got.reshape(-1)[i]), "differing": int(len(diff))}


def replay_units(spec: NetSpec, x, *, config=None, dense: bool = False, activations=None,
                 stop_at_first: bool = True) -> list:
    """Run every unit of ``spec``'s hardware on golden inputs; one record per unit.

    ``x`` is one input (C, H, W). ``activations`` (layer name -> tensor of
    this input, with or without a leading batch axis of 1) are the golden
    activations to compare with; by default the golden model of ``spec``
    itself. A record: ``unit`` (input_sparsifier, engine, kwta, sparsifier,
    argmax), ``layer`` (the NetSpec layer it implements), ``compared_with``
    (the golden activation's layer), ``ok``, and for a failing unit
    ``first_difference`` or ``hung``/``protocol``.
    """
    from ..hw.argmax import Argmax
    from ..hw.generate import _prepare, summary
    from ..hw.kwta.global_ import bins
    from ..hw.sparsify import Sparsifier
    from ..hw.top import engine_for, plan, unit_after
    from ..sw.netspec import Conv2d

    x = golden.validate_inputs(spec, x)
    if len(x) != 1:
        raise ValueError(f"localise one input at a time, got {len(x)}")
    if activations is None:
        result = golden.run(spec, x)
        activations, logits = result.activations, result.logits[0]
    else:
        logits = None
    shapes = {layer.name: tuple(layer.out_shape) for layer in spec.layers}
    acts = {name: np.asarray(a, np.int64).reshape(shapes[name])
            for name, a in activations.items() if name in shapes}
    built, config = _prepare(spec, config, dense)
    skip = not dense
    stages = plan(built)
    model = summary(spec, config, dense=dense, inputs=x)["layers"]
    records = []

    def check(record, want, got, hung=None, problem=None):
        record["ok"] = hung is None and problem is None and _first_difference(want, got) is None
        if hung:
            record["hung"] = hung
        elif problem:
            record["protocol"] = problem
        elif not record["ok"]:
            record["first_difference"] = _first_difference(want, got)
        records.append(record)
        return record["ok"]

    # The input sparsifier: features -> sparse stream (flat order); none when a window
    # engine first reads several features a beat (HwConfig.input_width).
    features = x[0].astype(np.int64)
    shape = tuple(spec.input.shape)
    wide_input = config.input_width > 1
    if not wide_input:
        unit = Sparsifier(shape, skip_zeros=skip, order="flat")
        beats = [{"value": int(v), "last": int(i == features.size - 1)}
                 for i, v in enumerate(features.reshape(-1))]
        out, hung = _run_unit(unit, beats, 20 * features.size + MARGIN_CYCLES)
        got, problem = _from_sparse(out, shape) if not hung else (None, None)
        if not check({"unit": "input_sparsifier", "layer": "input", "compared_with": "input"},
                     features, got, hung, problem) and stop_at_first:
            return records

    h = features
    for e, (stage, cfg) in enumerate(zip(stages, config.layers)):
        layer = stage.layer
        budget = int(20 * model[e]["cycles_per_input"]) + MARGIN_CYCLES
        final = e == len(stages) - 1
        # ---- the engine (with its fused pool) -----------------------------
        engine = engine_for(stage, cfg, e, config.input_width)
        if isinstance(layer, Conv2d):
            count = stage.out_shape[1] * stage.out_shape[2]
        else:
            count = -(-int(np.prod(stage.out_shape)) // cfg.width)
        # the golden activation the engine must produce: its layer's, or its pool's
        names = [m.name for m in built.layers]
        at = names.index(layer.name) + (1 if stage.pool > 1 else 0)
        target = spec.layers[at].name
        want = np.asarray(acts[target]) if target in acts else None
        if final and logits is not None and want is None:
            want = logits
        ordered = isinstance(layer, Conv2d)
        beats = (_dense_beats(features.reshape(-1), config.input_width) if e == 0 and wide_input
                 else _sparse_beats(np.asarray(h).reshape(stage.in_shape), dense, ordered))
        out, hung = _run_unit(engine, beats, budget, count=count)
        got = _from_dense(out, stage.out_shape, cfg.width) if not hung else None
        if not check({"unit": "engine", "layer": layer.name, "compared_with": target,
                      "pool": stage.pool}, want, got, hung) and stop_at_first:
            return records
        h = want
        if final:
            # ---- the argmax --------------------------------------------------
            classes = len(spec.classes)
            unit = Argmax(classes)
            out, hung = _run_unit(unit, _dense_beats(np.asarray(h).reshape(-1)),
                                  4 * classes + MARGIN_CYCLES, count=1)
            want = np.append(np.asarray(h).reshape(-1),
                             golden.argmax(np.asarray(h).reshape(1, -1))[0])
            got = (np.append([int(v) for v in out[0].logits], int(out[0].cls)) if out
                   else None)
            check({"unit": "argmax", "layer": "argmax", "compared_with": f"{target} + class"},
                  want, got, hung)
            break
        # ---- the k-WTA or sparsifier after the engine ------------------------
        unit = unit_after(stage, skip_zeros=skip, width=cfg.width, search_bits=cfg.search_bits)
        kind = "sparsifier" if stage.kwta is None else "kwta"
        target = stage.kwta.name if stage.kwta is not None else target
        want = np.asarray(acts[target])
        # A global k-WTA scans 2**(8 + f) bins per input (hw/kwta/global_.py).
        frac = stage.kwta.frac_bits if stage.kwta is not None else 0
        out, hung = _run_unit(unit, _dense_beats(np.asarray(h).reshape(stage.out_shape),
                                                 cfg.width),
                              20 * (int(np.prod(stage.out_shape)) + 2 * bins(frac))
                              + MARGIN_CYCLES)
        got, problem = _from_sparse(out, stage.out_shape) if not hung else (None, None)
        if not check({"unit": kind, "layer": stage.kwta.name if stage.kwta else layer.name,
                      "compared_with": target}, want, got, hung, problem) and stop_at_first:
            return records
        h = want
    return records


def localise(spec: NetSpec, x, *, config=None, dense: bool = False, activations=None) -> dict:
    """The first unit whose output differs from golden when fed the golden input.

    Returns a dict for :func:`cosparse.sim.run.simulate`'s report:
    ``first_diverging_layer`` (a NetSpec layer name, or None when every unit
    agrees), ``unit``, ``compared_with``, ``first_difference`` (flat
    ``index``, ``coordinates``, ``expected``, ``got``, number ``differing``)
    or ``hung``/``protocol``, ``units_checked``, and a one-line ``note``.
    """
    records = replay_units(spec, x, config=config, dense=dense, activations=activations)
    bad = next((r for r in records if not r["ok"]), None)
    out = {"units_checked": [f"{r['unit']}:{r['layer']}" for r in records]}
    if bad is None:
        out.update(first_diverging_layer=None,
                   note="every unit matches the golden model when fed the golden input: the "
                        "mismatch comes from how the units are joined (FIFOs, handshakes, "
                        "stream order) or from the wrapper, not from one unit")
        return out
    out.update(first_diverging_layer=bad["layer"], unit=bad["unit"],
               compared_with=bad["compared_with"])
    for key in ("first_difference", "hung", "protocol"):
        if key in bad:
            out[key] = bad[key]
    if "first_difference" in bad:
        d = bad["first_difference"]
        what = (f"index {d['index']} {tuple(d['coordinates'])}: expected {d['expected']}, "
                f"got {d['got']} ({d['differing']} values differ)" if d["index"] is not None
                else f"expected {d['expected']}, got {d['got']}")
    else:
        what = bad.get("hung") or bad.get("protocol")
    out["note"] = (f"{bad['unit']} of layer {bad['layer']!r} diverges from golden "
                   f"{bad['compared_with']!r} on its golden input: {what}")
    return out
