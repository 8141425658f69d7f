"""Cost model of a generated design: cycles per input and UltraScale+ resources per unit.

Design-space exploration (hw/explore.py) needs, for every candidate
:class:`~.config.HwConfig`, the initiation interval, the latency and the
resources without building anything. Both halves are functions of the
per-layer knobs (lanes, offsets, engine kind, drain width, search bits):

* **Cycles** come from :func:`~.generate.stage_cycles`, the same per-engine
  formulas as the generator's :func:`~.generate.summary` (docs/hardware.md,
  "Cycle model (per input)"), but kept per input of a few calibration
  inputs instead of averaged: the activations, and so the work, differ from
  input to input, and a pipeline of small FIFOs runs at neither the slowest
  stage's mean nor the mean of the slowest stage per input, but between
  (:func:`interval_estimate`).
* **Resources** (LUT, FF, DSP48E2, RAMB36, URAM) per unit, linear in the
  knobs, with coefficients fitted to yosys ``synth_xilinx -family xcup`` of
  the default network's modules (bench/results/resources-default.json) and
  of a few engines synthesised at other lanes and offsets
  (bench/results/cost-model-engines.json, ``python bench/engine_resources.py``).

A :class:`Profile` holds the golden model's activations of the calibration
inputs once; each layer's cycles depend only on its own config and those
activations, so the exploration evaluates a layer's options once each and
combines them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import ceil, prod

import numpy as np

from ..boards.devices import RESOURCES, XCU250, XCZU3EG
from ..sw import golden
from ..sw.netspec import Conv2d, NetSpec, random_inputs
from . import latency as latency_model
from .config import HwConfig, LayerConfig
from .generate import _emit_cycles, stage_cycles, weight_memory_bits
from .kwta.local import search_cycles
from .top import plan, position_major_input

__all__ = ["Profile", "profile", "layer_cycles", "cycles", "interval_estimate", "Budget",
           "parse_budget", "BUDGETS", "unit_resources", "resources", "COEFFICIENTS",
           "BRAM36_BITS"]

#: Bits of one UltraScale+ RAMB36E2 (36 Kb, parity bits included).
BRAM36_BITS = 36 * 1024

#: Widest port of a RAMB36E2 in simple dual-port mode (72 bits x 512 words).
BRAM36_WIDTH = 72


@dataclass
class Profile:
    """The golden model's activations of calibration inputs, for the cycle model.

    ``x_in[i]`` is what packed layer ``i``'s engine receives, ``acts`` every
    layer's output by name, ``useful_macs`` the mean non-zero activation x
    packed group products per input (the efficiency's numerator).
    """

    spec: NetSpec
    stages: list
    x_in: list
    acts: dict
    useful_macs: float
    inputs: int

    def input_cycles(self, input_width: int = 1) -> int:
        """The input stage's cycles per input: ``input_width`` features per cycle (the input
        Sparsifier: one; a first window engine: :attr:`~.config.HwConfig.input_width`)."""
        return int(prod(self.spec.input.shape)) // input_width


def profile(spec: NetSpec, inputs=None, count: int = 8, seed: int = 0) -> Profile:
    """The :class:`Profile` of ``spec`` on ``inputs`` (int8; default ``count`` random ones)."""
    if not isinstance(spec, NetSpec):
        raise TypeError(f"spec must be a NetSpec, got {type(spec).__name__}")
    x = random_inputs(spec, count, seed=seed) if inputs is None else inputs
    x = golden.validate_inputs(spec, x)
    if len(x) == 0:
        raise ValueError("the cost model needs at least one calibration input")
    result = golden.run(spec, x)
    acts = result.activations
    names = [layer.name for layer in spec.layers]
    stages = plan(spec)
    x_in = []
    for stage in stages:
        at = names.index(stage.layer.name)
        x_in.append(x if at == 0 else acts[names[at - 1]])
    useful = float(sum(np.mean(st.useful_macs) for st in result.stats))
    return Profile(spec, stages, x_in, acts, useful, len(x))


def layer_cycles(prof: Profile, index: int, cfg: LayerConfig, input_width: int = 1) -> dict:
    """Per-input cycles of packed layer ``index`` with ``cfg`` (:func:`~.generate.stage_cycles`),
    with ``after`` always an array (zeros after the last engine) and ``timing``: what
    :func:`latency` needs (:func:`.latency.stage_timing`).
    ``input_width`` is the config's, read by the first engine only."""
    stage = prof.stages[index]
    c = stage_cycles(prof.spec, stage, index, cfg, prof.x_in[index], prof.acts,
                     beat=input_width if index == 0 else 1)
    n = prof.inputs
    after = c["after"]
    last = after is None
    after = np.zeros(n) if last else np.broadcast_to(np.asarray(after, float), (n,)).copy()
    layer = stage.layer
    if not last and isinstance(layer, Conv2d) and stage.kwta is not None \
            and stage.kwta.mode == "local":
        # A local k-WTA fed back to back loads a position while it searches the one before
        # (hw/kwta/local.py: "at best one every search_cycles - 1"), so a position costs
        # its search steps, not the summary's load + steps (simulation agrees).
        names = [l.name for l in prof.spec.layers]
        out = prof.acts[names[names.index(layer.name) + (stage.pool > 1) + 1]]
        steps = search_cycles(stage.kwta.frac_bits, cfg.search_bits) - 1
        after = _emit_cycles(out, False, steps).astype(float)
    return {"cycles": np.asarray(c["cycles"], float), "after": after, "last": last,
            "accumulate": np.asarray(c["accumulate"], float),
            "multipliers": cfg.multipliers(layer, stage.winners),
            "timing": latency_model.stage_timing(prof, index, cfg, input_width, cycles=c)}


def interval_estimate(per_stage: np.ndarray) -> float:
    """The steady-state interval of a stream from per-stage, per-input cycles [stages, inputs].

    Two bounds: the slowest stage's mean (FIFOs decouple the stages completely) and
    the mean over inputs of the slowest stage (the stages move in lock step). The
    generated pipeline has small FIFOs (4 entries) in front of each engine but double
    buffers inside, so one input's slow stage is hidden only behind a neighbour's
    slack of the same input; the estimate is the mean of the two bounds, which
    simulation agrees with (tests/sim/test_cost_model.py).
    """
    per_stage = np.asarray(per_stage, float)
    decoupled = float(per_stage.mean(axis=1).max())
    lockstep = float(per_stage.max(axis=0).mean())
    return (decoupled + lockstep) / 2


def cycles(prof: Profile, config: HwConfig, per_layer=None) -> dict:
    """Interval, latency and bottleneck of ``config`` on ``prof``'s inputs.

    ``per_layer`` (optional) holds :func:`layer_cycles` of each layer already computed.
    Returns ``interval`` (the :func:`interval_estimate`), its two bounds,
    ``latency`` (one input alone, :func:`latency`), ``bottleneck`` (the stage of the
    largest mean), ``stages`` (name -> mean cycles), ``multipliers`` and ``efficiency``
    (useful MACs / (multipliers x interval)).
    """
    if per_layer is None:
        per_layer = [layer_cycles(prof, i, cfg, config.input_width)
                     for i, cfg in enumerate(config.layers)]
    first = float(prof.input_cycles(config.input_width))
    names, rows = ["input"], [np.full(prof.inputs, first)]
    for stage, c in zip(prof.stages, per_layer):
        names.append(stage.layer.name)
        rows.append(c["cycles"])
        if not c["last"]:
            names.append(f"after {stage.layer.name}")
            rows.append(c["after"])
    table = np.vstack(rows)
    means = table.mean(axis=1)
    interval = interval_estimate(table)
    multipliers = sum(c["multipliers"] for c in per_layer)
    return {"interval": interval, "interval_decoupled": float(means.max()),
            "interval_lockstep": float(table.max(axis=0).mean()),
            "latency": latency(prof, per_layer, config.input_width, config.fifo_depth),
            "bottleneck": names[int(np.argmax(means))],
            "stages": {n: float(m) for n, m in zip(names, means)},
            "multipliers": multipliers,
            "efficiency": prof.useful_macs / (multipliers * interval) if multipliers else 0.0}


def latency(prof: Profile, per_layer, input_width: int = 1, fifo_depth: int = 4) -> float:
    """Cycles from one input's first beat to its result, the pipeline otherwise empty and
    just out of reset, the mean over the calibration inputs: each unit's own pipeline depth
    and work (:mod:`.latency`, from the ``timing`` of :func:`layer_cycles`)."""
    return latency_model.latency(prof, [c["timing"] for c in per_layer], input_width,
                                 fifo_depth)


# ---- resources -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """Resources one design may use: a name and a limit per resource of :data:`RESOURCES`."""

    name: str
    lut: float
    ff: float
    dsp: float
    bram36: float
    uram: float

    def as_dict(self) -> dict:
        return {r: getattr(self, r) for r in RESOURCES}

    def fraction(self, used: dict) -> dict:
        """``used`` / this budget per resource (inf where the budget has none of it)."""
        return {r: (used.get(r, 0) / getattr(self, r)) if getattr(self, r)
                else (0.0 if not used.get(r, 0) else float("inf")) for r in RESOURCES}


def _device_budget(name, device, fraction):
    return Budget(name, *(getattr(device, r) * fraction for r in RESOURCES))


#: Named budgets: 1/20 of a U250 (the published single-network slice), a U250 at the
#: full-chip fraction (80%), a ZU3EG, and the ULX3S's ECP5-85F (83,640 LUT4 and FFs, 156
#: 18x18 multipliers, 208 DP16KD of 18 Kb = 104 RAMB36 equivalents; its LUT4s counted as
#: the model's LUT6s, an optimistic approximation).
BUDGETS = {
    "u250/20": _device_budget("u250/20", XCU250, 1 / 20),
    "u250": _device_budget("u250", XCU250, 0.8),
    "zu3eg": _device_budget("zu3eg", XCZU3EG, 0.8),
    "ulx3s": Budget("ulx3s", 83_640 * 0.8, 83_640 * 0.8, 156 * 0.8, 104 * 0.8, 0),
}


def parse_budget(text: str) -> Budget:
    """A :class:`Budget` from ``u250/20``, ``u250``, ``zu3eg``, ``ulx3s`` or
    ``LUT=..,DSP=..,BRAM=..[,FF=..,URAM=..]`` (unnamed resources unlimited);
    ValueError names the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"budget must be one of {sorted(BUDGETS)} or LUT=..,DSP=..,BRAM=.., "
                         f"got {text!r}")
    key = text.strip().lower()
    if key in BUDGETS:
        return BUDGETS[key]
    if "=" not in key:
        raise ValueError(f"unknown budget {text!r}: use one of {sorted(BUDGETS)} or "
                         f"LUT=..,DSP=..,BRAM=..")
    aliases = {"lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram36", "bram36": "bram36",
               "uram": "uram"}
    limits = {r: float("inf") for r in RESOURCES}
    for part in key.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in aliases:
            raise ValueError(f"budget {text!r}: unknown resource {name!r}; use "
                             f"{', '.join(a.upper() for a in aliases)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"budget {text!r}: {name.upper()} must be a number, "
                             f"got {value!r}") from None
        if number < 0:
            raise ValueError(f"budget {text!r}: {name.upper()} must be non-negative")
        limits[aliases[name]] = number
    return Budget(text, **limits)


#: Per unit kind: LUT and FF as ``per_multiplier x multipliers + per_lane_sum x requant
#: channels + base`` (engines), or per value/per channel terms (k-WTAs), fitted to yosys
#: synth_xilinx -family xcup of the default's modules and of the engines synthesised at other
#: lanes and offsets (bench/results/cost-model-engines.json); docs/hardware.md lists them.
COEFFICIENTS = {
    "window": {"lut": (62.0, 60.0, 400.0), "ff": (100.0, 100.0, 400.0)},
    # The window's, plus per multiplier and kernel of its group beyond the first a masked
    # leaf of that kernel's adder tree (GATHER_LEAF).
    "gather": {"lut": (62.0, 60.0, 400.0), "ff": (100.0, 100.0, 400.0)},
    "scatter": {"lut": (105.0, 60.0, 1500.0), "ff": (125.0, 60.0, 1500.0)},
    "linear": {"lut": (60.0, 40.0, 1500.0), "ff": (40.0, 40.0, 700.0)},
    # local k-WTA: per channel and threshold bit decided per step, comparators and counters
    "kwta_local": {"lut": (50.0, 2.0), "ff": (94.0, 2.0)},
    # global k-WTA: per value of the drain's width (the default's: width 2, 279 LUT, 169 FF)
    "kwta_global": {"lut": 140.0, "ff": 85.0, "bram36": 1.0},
    "fifo": {"lut": 26.0, "ff": 28.0},
    "small": {"lut": 140.0, "ff": 600.0},  # input Sparsifier + argmax
}


#: A gather engine's product enters the adder tree of each of the ``n`` kernels of its group,
#: masked: per multiplier and kernel beyond the first, about an adder and a register of the
#: tree's width, fitted to the synthesis of the default's conv2 as a gather engine (8 lanes x
#: 2 offsets x 8 winners: 34,425 LUT, 35,687 FF; bench/results/engine-gather-conv2.json).
GATHER_LEAF = {"lut": 25.0, "ff": 18.0}


#: (depth, width, RAMB36 units) of every RAMB36E2 / RAMB18E2 aspect ratio (parity bits used
#: as data, as yosys' memory_libmap does).
BRAM_SHAPES = tuple((32768 >> i, w, 1.0) for i, w in enumerate((1, 2, 4, 9, 18, 36, 72))) + \
    tuple((16384 >> i, w, 0.5) for i, w in enumerate((1, 2, 4, 9, 18, 36)))

#: Memories this deep or shallower go to distributed RAM (RAM32M16/RAM64M), not block RAM:
#: yosys maps the default's 32-deep kernel-ring banks and FIFOs so, its 70-deep and deeper
#: memories to RAMB18/RAMB36 (bench/results/resources-default.json).
LUTRAM_DEPTH = 64

#: A linear engine's lane accumulators stay in distributed RAM up to this many words a lane
#: (measured at 140, the default's fc1, and 8, its fc2; deeper ones are assumed block RAM),
#: at this many LUTs per accumulator bit, RAM32M16 and read multiplexers together (fitted to
#: the default's fc1: 5,172 LUT over the rest of the model for 64,680 bits,
#: bench/results/resources-default.json).
LANE_LUTRAM_DEPTH = 256
LANE_LUTRAM_LUT_PER_BIT = 0.08


def _bram36(depth: int, width: int, copies: int = 1) -> float:
    """RAMB36 of ``copies`` memories of ``depth`` words x ``width`` bits: the cheapest tiling
    by one block RAM aspect ratio (:data:`BRAM_SHAPES`, RAMB18 halves counted 0.5); none
    for a memory at most :data:`LUTRAM_DEPTH` deep."""
    if depth <= LUTRAM_DEPTH or width == 0:
        return 0.0
    return copies * min(ceil(depth / d) * ceil(width / w) * unit for d, w, unit in BRAM_SHAPES)


def _requant_channels(layer, cfg) -> int:
    """Sums a layer's drain requantises per beat (each a DSP multiply)."""
    if isinstance(layer, Conv2d):
        return cfg.lanes * layer.n if cfg.engine in ("window", "gather") else layer.n
    return cfg.width


def unit_resources(prof_or_spec, index: int, cfg: LayerConfig) -> dict:
    """Modelled resources of packed layer ``index``'s engine and the unit after it with ``cfg``:
    {"engine": {...}, "after": {...}} each of :data:`RESOURCES`."""
    spec = prof_or_spec.spec if isinstance(prof_or_spec, Profile) else prof_or_spec
    stage = plan(spec)[index] if not isinstance(prof_or_spec, Profile) \
        else prof_or_spec.stages[index]
    layer = stage.layer
    kind = "linear" if not isinstance(layer, Conv2d) else cfg.engine
    mults = cfg.multipliers(layer, stage.winners)
    channels = _requant_channels(layer, cfg)
    coeff = COEFFICIENTS[kind]
    passes = cfg.passes(layer.groups)
    engine = {"dsp": mults + channels, "uram": 0}
    for r in ("lut", "ff"):
        a, b, c = coeff[r]
        engine[r] = a * mults + b * channels + c
    if kind == "window":
        engine["bram36"] = 0.0  # weights are constants of the adder trees, lines shallow
    elif kind == "gather":
        from .engine.gather import gather_memories
        for r in ("lut", "ff"):
            engine[r] += GATHER_LEAF[r] * mults * (layer.n - 1)
        # hw/engine/gather.py: a line-buffer copy per offset read a cycle, a weight-ROM copy
        # per (offset, winner) pair.
        engine["bram36"] = sum(_bram36(depth, width, copies)
                               for depth, width, copies in gather_memories(
                                   layer, cfg, stage.winners, stage.pool))
    elif isinstance(layer, Conv2d):
        from .engine.conv import conv_tiling
        ring = position_major_input(stage, index)
        tiling = conv_tiling(layer, cfg, stage.pool, ring)
        copies = tiling.col_copies
        depth = layer.fan_in * passes // copies
        bits = weight_memory_bits(layer, passes, cfg.lanes, copies, False)
        weights = _bram36(depth, bits // max(1, depth))
        if cfg.accumulators == "kernel":
            # hw/engine/kernel_ring.py: per bank and lane a sum per (entry, kernel), and per
            # lane a base memory of every bank's sums.
            kb = max(1, (layer.n - 1).bit_length())
            accs = _bram36(tiling.depth << kb, cfg.acc_bits, tiling.banks * cfg.lanes) + \
                _bram36(tiling.banks * (tiling.depth << kb), cfg.acc_bits, cfg.lanes)
        else:
            # hw/engine/router.py: per bank and buffer one word of lanes x n sums per entry.
            accs = _bram36(tiling.depth, cfg.lanes * layer.n * cfg.acc_bits,
                           tiling.banks * (1 if ring else 2))
        engine["bram36"] = weights + accs
    else:
        depth = layer.fan_in * passes
        bits = weight_memory_bits(layer, passes, cfg.lanes, 1, False)
        # hw/engine/router.py: per lane two buffers of passes x n sums, width to a word. With
        # the read-modify-write pipelined (two read ports: the add's and the drain's) yosys
        # puts them in distributed RAM (RAM32M16) up to LANE_LUTRAM_DEPTH words: the default's
        # fc1, 140 words of 42 bits a lane, 264 RAM32M16 and their read multiplexers.
        sums = passes * layer.n
        words = 2 * sums // cfg.width
        engine["bram36"] = _bram36(depth, bits // max(1, depth))
        if words <= LANE_LUTRAM_DEPTH:
            engine["lut"] += LANE_LUTRAM_LUT_PER_BIT * 2 * sums * cfg.acc_bits * cfg.lanes
        else:
            engine["bram36"] += _bram36(words, cfg.width * cfg.acc_bits, cfg.lanes)
    after = {r: 0.0 for r in RESOURCES}
    if stage.kwta is not None and stage.kwta.mode == "local":
        channels_k = stage.out_shape[0]
        levels = 2 ** cfg.search_bits - 1  # comparators and counts per channel and step
        a, b = COEFFICIENTS["kwta_local"]["lut"]
        f, g = COEFFICIENTS["kwta_local"]["ff"]
        after.update(lut=channels_k * (a + b * levels * channels_k / 16),
                     ff=channels_k * (f + g * levels * channels_k / 16))
    elif stage.kwta is not None:
        g = COEFFICIENTS["kwta_global"]
        after.update(lut=g["lut"] * cfg.width, ff=g["ff"] * cfg.width, bram36=g["bram36"])
    fifo = COEFFICIENTS["fifo"]
    engine["lut"] += fifo["lut"]
    engine["ff"] += fifo["ff"]
    return {"engine": engine, "after": after}


def resources(spec: NetSpec, config: HwConfig, per_layer=None) -> dict:
    """Modelled resources of the whole design (:func:`unit_resources` summed, plus the input
    Sparsifier and argmax): {resource: count, "units": {name: {...}}}."""
    units = {}
    total = {r: 0.0 for r in RESOURCES}
    small = COEFFICIENTS["small"]
    units["io"] = {"lut": small["lut"], "ff": small["ff"], "dsp": 0, "bram36": 0.0, "uram": 0}
    for index, cfg in enumerate(config.layers):
        got = per_layer[index] if per_layer is not None else unit_resources(spec, index, cfg)
        name = spec.packed_layers[index].name
        units[f"engine_{name}"] = got["engine"]
        units[f"after_{name}"] = got["after"]
    for unit in units.values():
        for r in RESOURCES:
            total[r] += unit.get(r, 0)
    total["units"] = units
    return total
