"""The gather (output-stationary, k winners a position) conv engine against the golden model."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import signed

from cosparse.hw import cost
from cosparse.hw.config import HwConfig, LayerConfig, accumulator_bits
from cosparse.hw.engine.gather import GatherConvEngine, gather_cycles, gather_writes
from cosparse.hw.explore import layer_options
from cosparse.hw.generate import generate, summary
from cosparse.hw.top import Network, plan
from cosparse.sw import golden
from cosparse.sw.netspec import Conv2d, random_inputs, random_netspec

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import check_vector_stream, end_cycles  # noqa: E402
from _net_util import run_network  # noqa: E402
from test_engine import as_vectors, conv_expected, conv_layer, widened  # noqa: E402


def winner_beats(x: np.ndarray, rng=None) -> list:
    """Sparse beats of one (C, H, W) input as a local k-WTA sends them: positions in raster
    order, each position's non-zeros (channels shuffled when ``rng`` is given), and the
    empty-input rule of hw/layouts.py."""
    _, h, w = x.shape
    beats = []
    for y in range(h):
        for col in range(w):
            channels = [int(ch) for ch in np.flatnonzero(x[:, y, col])]
            if rng is not None:
                rng.shuffle(channels)
            beats += [{"value": int(x[ch, y, col]), "c": ch, "y": y, "x": col, "last": 0}
                      for ch in channels]
    beats = beats or [{"value": 0, "c": 0, "y": 0, "x": 0, "last": 0}]
    beats[-1]["last"] = 1
    return beats


def winners(rng, shape, k, count, density=0.8, exact=False):
    """Random inputs with at most ``k`` non-zeros a position (``exact``: ``k`` at each
    position it fills): the first all zero, the second ``k`` int8 extremes at every
    position, then random."""
    c, h, w = shape
    xs = np.zeros((count, c, h, w), np.int8)
    for b in range(1, count):
        for y in range(h):
            for col in range(w):
                if b == 1 or rng.random() < density:
                    m = k if b == 1 or exact else int(rng.integers(0, k + 1))
                    channels = rng.choice(c, m, replace=False)
                    xs[b, channels, y, col] = rng.choice([-128, 127], m) if b == 1 else \
                        rng.integers(-128, 128, m)
    return xs


def check(engine, layer, pool, xs, seed, stall=0.3):
    rng = np.random.default_rng(seed)
    beats, expected = [], []
    for x in xs:
        beats += winner_beats(x, rng)
        expected += as_vectors(conv_expected(layer, x, pool), layer.out_channels)
    check_vector_stream(engine, beats, expected, len(xs), stall=stall, seed=seed)


def after_local_kwta(seed):
    """A random network whose second conv layer reads a local k-WTA: its NetSpec, the stage
    of that layer and the k-WTA."""
    for s in range(seed * 100, seed * 100 + 400):
        spec = random_netspec(s, strided=s % 2 == 1, widths=s % 3 == 0)
        stages = plan(spec)
        if len(stages) > 1 and isinstance(stages[1].layer, Conv2d) \
                and stages[0].kwta is not None and stages[0].kwta.mode == "local":
            return spec, stages[1], stages[0].kwta
    raise AssertionError("no such random NetSpec")


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_after_a_local_kwta(seed):
    """The second conv of random networks (kernels, strides, paddings, pools, weight bits,
    fraction bits) on its golden input, the first layer's k winners a position, and on
    random inputs of at most k non-zeros a position; random lanes and offsets per cycle,
    random stalls on both streams."""
    rng = np.random.default_rng(seed)
    spec, stage, kwta = after_local_kwta(seed)
    layer = stage.layer
    names = [l.name for l in spec.layers]
    golden_in = golden.run(spec, random_inputs(spec, 3, seed=seed)).activations[kwta.name]
    xs = np.concatenate([golden_in, winners(rng, layer.in_shape, kwta.k, 3)]).astype(np.int8)
    assert names.index(layer.name) == names.index(kwta.name) + 1
    lanes = int(rng.integers(1, layer.groups + 1))
    offsets = int(rng.integers(1, layer.kernel ** 2 + 1))
    config = LayerConfig(lanes=lanes, offsets=offsets, acc_bits=accumulator_bits(layer))
    engine = GatherConvEngine(layer, config, k=kwta.k, pool=stage.pool)
    check(engine, layer, stage.pool, xs, seed, stall=float(rng.choice([0.0, 0.3, 0.6])))


@pytest.mark.parametrize("seed,c,size,kern,stride,padding,pool,lanes,offsets,n,k,bits,frac", [
    (0, 4, 8, 3, 1, 0, 2, 2, 2, 2, 2, 8, 0),     # two passes, pool 2, a partial last chunk
    (1, 3, 9, 3, 2, 1, 1, 1, 9, 3, 3, 16, 0),    # stride 2, padding 1, the whole kernel a cycle
    (2, 5, 8, 4, 2, 3, 2, 3, 1, 2, 1, 4, 4),     # padding K - 1, one offset a cycle, fractions
    (3, 2, 7, 1, 3, 0, 1, 4, 1, 1, 2, 12, 2),    # 1x1 kernel, stride above the kernel, n = 1
    (4, 8, 14, 5, 1, 0, 2, 4, 2, 4, 3, 8, 0),    # conv2's kernel, pool and offsets
])
def test_strides_paddings_pools_passes(seed, c, size, kern, stride, padding, pool, lanes,
                                       offsets, n, k, bits, frac):
    rng = np.random.default_rng(seed)
    layer = conv_layer(rng, c=c, size=size, k=kern, out=8 if n == 4 else 7, n=n)
    layer = widened(dataclasses.replace(layer, stride=stride, padding=padding), rng, bits, frac)
    layer.validate()
    config = LayerConfig(lanes=lanes, offsets=offsets, acc_bits=accumulator_bits(layer))
    engine = GatherConvEngine(layer, config, k=k, pool=pool)
    assert engine.o.payload.values[0].shape() == signed(8 + frac)
    check(engine, layer, pool, winners(rng, layer.in_shape, k, 4), seed)


def test_cycles_match_the_model():
    """Fed without gaps and never stalled, inputs follow each other every
    ``gather_cycles``: bound by the walk (36 positions x 2 passes x 5 chunks) with few
    winners, by the writer (a cycle per beat: 64 positions x 8) with many."""
    rng = np.random.default_rng(7)
    layer = conv_layer(rng, c=8, size=8, k=3, out=6, n=2)
    config = LayerConfig(lanes=2, offsets=2, acc_bits=accumulator_bits(layer))
    for k, density, bound in ((2, 0.7, "walk"), (8, 1.0, "writer")):
        xs = winners(rng, layer.in_shape, k, 6, density, exact=True)
        writes = gather_writes(xs)
        model = gather_cycles(layer, 2, 2, 2, writes)
        walk = 36 * 2 * 5
        assert (model[1:] == walk).all() if bound == "walk" else (model[1:] > walk).all()
        engine = GatherConvEngine(layer, config, k=k, pool=2)
        beats = [b for x in xs for b in winner_beats(x)]
        # After the all-zero first input (64 writes) the writer runs ahead for a while
        # (outputs end later than inputs are written): steady from the fourth input on.
        assert np.diff(end_cycles(engine, beats, len(xs)))[2:].tolist() == model[3:].tolist()


def test_bad_parameters_name_the_fix():
    rng = np.random.default_rng(0)
    layer = conv_layer(rng, c=4, size=6, k=3, out=4, n=2)
    good = LayerConfig(lanes=2, offsets=2, acc_bits=accumulator_bits(layer))
    with pytest.raises(ValueError, match=r"k \(beats per input position\) must be an integer "
                                         r"in \[1, 4\] \(the input's channels\), got 5"):
        GatherConvEngine(layer, good, k=5)
    with pytest.raises(ValueError, match=r"offsets \(kernel offsets per cycle\) must be an "
                                         r"integer in \[1, 9\] \(K\*K\), got 10"):
        GatherConvEngine(layer, dataclasses.replace(good, offsets=10), k=2)
    with pytest.raises(ValueError, match=r"pool must be a positive integer dividing the "
                                         r"output \(4, 4\), got 3"):
        GatherConvEngine(layer, good, k=2, pool=3)
    with pytest.raises(ValueError, match="acc_bits = 8 cannot hold"):
        GatherConvEngine(layer, dataclasses.replace(good, acc_bits=8), k=2)
    with pytest.raises(ValueError, match="without requant"):
        GatherConvEngine(dataclasses.replace(layer, requant=None), good, k=2)
    with pytest.raises(TypeError, match="layer must be a Conv2d"):
        GatherConvEngine("conv", good, k=2)


def gather_config(spec, rng, index):
    """The default config of ``spec`` with packed layer ``index`` a gather engine of random
    lanes and offsets per cycle."""
    layer = spec.packed_layers[index]
    config = HwConfig.default_for(spec)
    gather = dataclasses.replace(config.layers[index], engine="gather",
                                 lanes=int(rng.integers(1, layer.groups + 1)),
                                 offsets=int(rng.integers(1, layer.kernel ** 2 + 1)))
    layers = list(config.layers)
    layers[index] = gather
    return dataclasses.replace(config, layers=tuple(layers))


@pytest.mark.parametrize("seed", [0, 3])
def test_through_the_top_bit_exact(seed):
    """A random network with its second conv (after a local k-WTA) as a gather engine, whole
    through the top in Amaranth's simulator: bit-exact with the golden model; the summary
    counts its ``lanes x offsets x k`` multipliers and its cycles from gather_cycles, and
    the config survives its JSON form."""
    rng = np.random.default_rng(seed)
    spec, stage, kwta = after_local_kwta(seed)
    config = gather_config(spec, rng, 1)
    xs = random_inputs(spec, 3, seed=seed)
    logits, classes, busy, _ = run_network(generate(spec, config), xs, seed=seed)
    expected = golden.run(spec, xs)
    np.testing.assert_array_equal(logits, expected.logits)
    np.testing.assert_array_equal(classes, expected.predictions)
    assert all(b > 0 for b in busy)
    cfg = config.layers[1]
    row = summary(spec, config, inputs=xs)["layers"][1]
    assert (row["engine"], row["accumulators"]) == ("gather", "none")
    assert row["multipliers"] == cfg.lanes * cfg.offsets * kwta.k
    walk = int(np.prod(stage.layer.out_shape[1:])) * cfg.passes(stage.layer.groups) \
        * -(-stage.layer.kernel ** 2 // cfg.offsets)
    x_in = golden.run(spec, xs).activations[kwta.name]
    assert row["cycles_per_input"] == np.mean(np.maximum(gather_writes(x_in), walk))
    assert HwConfig.from_dict(config.to_dict(spec), spec) == config


def test_config_errors_name_the_fix():
    """gather only right after a local k-WTA, offsets 1 to K*K, not in the dense baseline."""
    rng = np.random.default_rng(1)
    spec, _, _ = after_local_kwta(1)
    first = spec.packed_layers[0].name
    with pytest.raises(ValueError, match=f"layer '{first}': engine 'gather' builds only a "
                                         f"conv2d right after a local k-WTA"):
        HwConfig.from_dict({"layers": {first: {"engine": "gather"}}}, spec)
    second = spec.packed_layers[1]
    kk = second.kernel ** 2
    with pytest.raises(ValueError, match=rf"offsets of a gather engine \(kernel offsets per "
                                         rf"cycle\) must be 1 to K\*K = {kk}, got {kk + 1}"):
        HwConfig.from_dict({"layers": {second.name: {"engine": "gather", "offsets": kk + 1}}},
                           spec)
    config = gather_config(spec, rng, 1)
    with pytest.raises(ValueError, match="dense baseline"):
        Network(spec, config, skip_zeros=False)
    with pytest.raises(ValueError, match="need the k of the local k-WTA"):
        config.layers[1].multipliers(second)


def test_explorer_offers_it_and_the_cost_model_counts_it():
    """The explorer offers a gather engine (every offset count 1 to K*K) for a conv layer
    right after a local k-WTA and for no other; the cost model counts its ``lanes x offsets
    x k`` multipliers, gather_cycles and its memories."""
    spec, stage, kwta = after_local_kwta(0)
    default = HwConfig.default_for(spec)
    options = layer_options(spec, 1, default.layers[1], default)
    gathers = [o for o in options if o.engine == "gather"]
    kk = stage.layer.kernel ** 2
    assert {o.offsets for o in gathers} == set(range(1, kk + 1))
    assert all(o.engine != "gather" for o in layer_options(spec, 0, default.layers[0], default))
    prof = cost.profile(spec, count=2)
    option = gathers[-1]
    c = cost.layer_cycles(prof, 1, option)
    assert c["multipliers"] == option.lanes * option.offsets * kwta.k
    writes = gather_writes(prof.x_in[1])
    assert c["cycles"].tolist() == gather_cycles(stage.layer, stage.pool,
                                                 option.passes(stage.layer.groups),
                                                 option.offsets, writes).tolist()
    res = cost.unit_resources(prof, 1, option)["engine"]
    assert res["dsp"] == option.lanes * option.offsets * kwta.k + option.lanes * stage.layer.n
