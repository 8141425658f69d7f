"""The window (output-stationary) conv engine against the golden model, with random stalls."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import ClockDomain, Module, signed
from amaranth.sim import Simulator

from cosparse.hw.config import HwConfig, LayerConfig, accumulator_bits
from cosparse.hw.engine.window import WindowConvEngine, window_cycles
from cosparse.hw.top import engine_for, plan
from cosparse.sim.streams import get_until, put_all
from cosparse.sw.netspec import Conv2d, random_netspec

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import end_cycles, run_stream_bench, sparse_beats  # noqa: E402
from test_engine import as_vectors, conv_expected, conv_layer, widened  # noqa: E402


def first_layer(seed):
    """A random first conv layer with one input channel, stride and padding drawn too, and
    the pool that follows it in its random network (1 if none)."""
    for s in range(seed * 100, seed * 100 + 100):
        spec = random_netspec(s, strided=s % 2 == 1, widths=s % 3 == 0)
        layer = spec.packed_layers[0]
        if isinstance(layer, Conv2d) and layer.in_shape[0] == 1:
            return spec, plan(spec)[0]
    raise AssertionError("no such random NetSpec")


def batch(rng, shape, density):
    """Random inputs: one all-zero, one all int8 maximum, one all minimum, then random."""
    x = rng.integers(-128, 128, (5, *shape))
    x[rng.random(x.shape) >= density] = 0
    x[0], x[1], x[2] = 0, 127, -128
    return x.astype(np.int8)


def raster_beats(x: np.ndarray, beat: int) -> list:
    """Dense input beats of one (1, H, W) input: ``beat`` values of a row each, raster order."""
    flat = [int(v) for v in x.reshape(-1)]
    return [{"values": flat[i:i + beat], "last": int(i + beat == len(flat))}
            for i in range(0, len(flat), beat)]


def check(engine, layer, pool, xs, seed, stall=0.3, beat=None):
    beats, expected = [], []
    for x in xs:
        # raster order, as a one-channel input's flat order is
        beats += sparse_beats(x) if beat is None else raster_beats(x, beat)
        expected += as_vectors(conv_expected(layer, x, pool), layer.out_channels)
    got, _ = run_stream_bench(engine, beats, len(expected), stall=stall, seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected
    per_input = len(expected) // len(xs)
    assert [i for i, o in enumerate(got) if o.last] == [per_input * (i + 1) - 1
                                                         for i in range(len(xs))]


@pytest.mark.parametrize("seed", range(8))
def test_random_first_layers(seed):
    """Random one-channel first layers (kernels 1-4, strides 1-2, paddings, pools, weight
    bits 4-16, fraction bits) at random lanes (one pass or several), random stalls."""
    rng = np.random.default_rng(seed)
    spec, stage = first_layer(seed)
    layer = stage.layer
    lanes = int(rng.integers(1, layer.groups + 1))
    engine = WindowConvEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                              pool=stage.pool)
    check(engine, layer, stage.pool, batch(rng, layer.in_shape, 0.6), seed,
          stall=float(rng.choice([0.0, 0.3, 0.6])))


@pytest.mark.parametrize("seed,size,k,stride,padding,pool,lanes,n,bits,frac", [
    (0, 8, 3, 1, 0, 2, 2, 2, 8, 0),     # two passes, pool 2
    (1, 9, 3, 2, 1, 1, 1, 3, 16, 0),    # stride 2, padding 1, 16-bit weights
    (2, 8, 4, 2, 3, 2, 3, 2, 4, 4),     # padding K - 1, fraction bits
    (3, 7, 1, 3, 0, 1, 4, 1, 12, 2),    # stride above the kernel: columns skipped
    (4, 12, 5, 1, 2, 2, 1, 4, 16, 0),   # conv1's kernel and packing, four passes
])
def test_strides_paddings_pools_passes(seed, size, k, stride, padding, pool, lanes, n, bits,
                                       frac):
    rng = np.random.default_rng(seed)
    layer = conv_layer(rng, c=1, size=size, k=k, out=7, n=n)
    layer = widened(dataclasses.replace(layer, stride=stride, padding=padding), rng, bits, frac)
    layer.validate()
    engine = WindowConvEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                              pool=pool)
    assert engine.o.payload.values[0].shape() == signed(8 + frac)
    check(engine, layer, pool, batch(rng, layer.in_shape, 0.5), seed)


@pytest.mark.parametrize("seed", range(4))
def test_dense_beats_of_several_positions(seed):
    """Dense raster input, ``beat`` positions a beat (1, 2 or the whole row width, any
    divisor of W), random layers and lanes, random stalls: the same outputs as the golden
    model, as with sparse input."""
    rng = np.random.default_rng(100 + seed)
    spec, stage = first_layer(seed)
    layer = stage.layer
    w = layer.in_shape[2]
    beat = int(rng.choice([d for d in range(1, w + 1) if w % d == 0]))
    lanes = int(rng.integers(1, layer.groups + 1))
    engine = WindowConvEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                              pool=stage.pool, beat=beat)
    check(engine, layer, stage.pool, batch(rng, layer.in_shape, 0.6), seed,
          stall=float(rng.choice([0.0, 0.3])), beat=beat)


def test_several_positions_a_beat_shorten_the_input_bound():
    """Bound by its writer (a fast walk: one pass, no pool), the engine takes ``H*W / beat``
    cycles per input at ``beat`` positions a beat, as window_cycles says."""
    rng = np.random.default_rng(5)
    layer = conv_layer(rng, c=1, size=12, k=3, out=4, n=2)
    config = LayerConfig(lanes=2, acc_bits=accumulator_bits(layer))
    for beat in (1, 2, 4):
        model = window_cycles(layer, 2, 1, beat)
        assert model == max(144 // beat, 5 * (max(4, 4 + 2) + 4 * max(4, 2 + 2)))
        engine = WindowConvEngine(layer, config, pool=2, beat=beat)
        xs = batch(rng, layer.in_shape, 0.6)
        beats = [b for x in xs for b in raster_beats(x, beat)]
        assert np.diff(end_cycles(engine, beats, len(xs))).tolist() == [model] * (len(xs) - 1)
    with pytest.raises(ValueError, match=r"beat must be None \(sparse input\) or a number of "
                                         r"positions dividing the input width 12 \(one of "
                                         r"\[1, 2, 3, 4, 6, 12\]\), got 5"):
        WindowConvEngine(layer, config, pool=2, beat=5)


def test_cycles_match_the_model_and_not_the_density():
    """Fed without gaps and never stalled, inputs follow each other every
    ``window_cycles`` (here the walk: 2 passes x 4 pool positions x 36 pooled outputs,
    more than the 196 input positions), dense or sparse alike."""
    rng = np.random.default_rng(7)
    layer = conv_layer(rng, c=1, size=14, k=3, out=8, n=2)
    pool, lanes = 2, 2
    engine = WindowConvEngine(layer, LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer)),
                              pool=pool)
    model = window_cycles(layer, pool, 2)
    assert model == 6 * (max(8, 4 + 2) + 5 * max(8, 2 + 2))
    x = batch(rng, layer.in_shape, 0.9)
    x[4] = np.where(rng.random(layer.in_shape) < 0.1, x[3], 0)
    beats = [b for v in x for b in sparse_beats(v)]
    assert list(np.diff(end_cycles(engine, beats, len(x)))) == [model] * (len(x) - 1)


def test_reset_mid_input_leaves_later_inputs_exact():
    """A reset in the middle of an input, while its outputs are on their way, loses that
    input only: the inputs after it come out exact and alone."""
    rng = np.random.default_rng(3)
    layer = conv_layer(rng, c=1, size=7, k=3, out=5, n=2)
    engine = WindowConvEngine(layer, LayerConfig(lanes=2, acc_bits=accumulator_bits(layer)),
                              pool=1)
    xs = batch(rng, layer.in_shape, 0.6)
    broken = sparse_beats(xs[3])
    beats = [b for x in xs[4:] for b in sparse_beats(x)] + sparse_beats(xs[1])
    expected = [v for x in (xs[4], xs[1]) for v in as_vectors(conv_expected(layer, x, 1), 5)]
    got, reset_done = [], []
    top = Module()
    top.domains.sync = domain = ClockDomain()
    top.submodules.engine = engine
    sim = Simulator(top)
    sim.add_clock(1e-6, domain=domain)

    async def bench(ctx):
        for beat in broken[:3 * len(broken) // 4]:
            await put_all(ctx, engine.i, [beat])
        ctx.set(engine.o.ready, 1)
        await ctx.tick().repeat(5)  # some outputs of the broken input are in the pipeline
        ctx.set(domain.rst, 1)
        await ctx.tick()
        ctx.set(domain.rst, 0)
        ctx.set(engine.o.ready, 0)
        reset_done.append(True)
        await put_all(ctx, engine.i, beats, stall=0.3, seed=2)

    async def consumer(ctx):
        while not reset_done:
            await ctx.tick()
        got.extend(await get_until(ctx, engine.o, len(expected), stall=0.3, seed=3))

    sim.add_testbench(bench)
    sim.add_testbench(consumer)
    sim.run()
    assert [[int(v) for v in o.values] for o in got] == expected


def test_config_default_and_errors():
    """default_for: a first one-channel conv becomes a window engine with the fewest lanes
    within the interval floor; a window engine on more channels is refused by name."""
    for seed in range(40):
        spec = random_netspec(seed)
        config = HwConfig.default_for(spec)
        first = spec.packed_layers[0]
        window = isinstance(first, Conv2d) and first.in_shape[0] == 1
        assert (config.layers[0].engine == "window") == window
        if window:
            stage = plan(spec)[0]
            cfg = config.layers[0]
            floor = HwConfig.interval_floor(spec, [c.width for c in config.layers])
            cycles = window_cycles(first, stage.pool, cfg.passes(first.groups))
            assert cycles <= floor or cfg.lanes == first.groups
            if cfg.lanes > 1:
                fewer = -(-first.groups // (cfg.lanes - 1))
                assert window_cycles(first, stage.pool, fewer) > floor
            assert isinstance(engine_for(stage, cfg, 0), WindowConvEngine)
            assert HwConfig.from_dict(config.to_dict(spec), spec) == config
        elif isinstance(first, Conv2d):
            bad = dataclasses.replace(config.layers[0], engine="window")
            with pytest.raises(ValueError, match="engine 'window' builds only a conv2d with one"):
                dataclasses.replace(config, layers=(bad,) + config.layers[1:]).validate(spec)
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, c=2, size=6, k=3, out=4, n=2)
    with pytest.raises(ValueError, match="input has 2 channels; build it with engine 'scatter'"):
        WindowConvEngine(layer, LayerConfig(lanes=1, acc_bits=accumulator_bits(layer)))
    spec, _ = first_layer(0)
    with pytest.raises(ValueError,
                       match=r"engine must be one of \['scatter', 'window', 'gather'\]"):
        HwConfig.from_dict({"layers": {spec.packed_layers[0].name: {"engine": "fast"}}}, spec)
