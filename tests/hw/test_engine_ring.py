"""Conv engines with a row-window ring (position-major input) against the golden model."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine
from cosparse.hw.engine.ring import RowWindow
from cosparse.hw.engine.tiling import Tiling

# A constructor that rejects its parameters leaves parts Amaranth reports as unused.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import run_stream_bench, sparse_beats  # noqa: E402
from test_engine import as_vectors, conv_expected, conv_layer  # noqa: E402


def raster_beats(x: np.ndarray) -> list:
    """Non-zero activations of a (C, H, W) input position-major: raster order of (y, x),
    channels ascending within a position (the order of hw/layouts.py's dense streams)."""
    beats = sparse_beats(x.transpose(1, 2, 0))
    for beat in beats:
        beat["y"], beat["x"], beat["c"] = beat.pop("c"), beat.pop("y"), beat.pop("x")
    return beats


def sparse_rows(rng, shape, batch, density):
    """Random inputs with whole rows empty (a row no beat passes), one input all zero."""
    x = rng.integers(-128, 128, (batch, *shape))
    x[rng.random(x.shape) >= density] = 0
    for b in range(batch):
        x[b, :, rng.random(shape[1]) < 0.3, :] = 0
    x[min(1, batch - 1)] = 0
    return x.astype(np.int8)


def run_ring(layer, config, pool, xs, *, stall, seed):
    engine = ConvEngine(layer, config, pool=pool, position_major=True)
    beats, expected = [], []
    for x in xs:
        beats += raster_beats(x)
        expected += as_vectors(conv_expected(layer, x, pool), layer.out_channels)
    got, _ = run_stream_bench(engine, beats, len(expected), stall=stall, seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected
    per_input = len(expected) // len(xs)
    assert [i for i, o in enumerate(got) if o.last] == [per_input * (i + 1) - 1
                                                         for i in range(len(xs))]
    return engine


@pytest.mark.parametrize("seed,c,size,kernel,lanes,offsets,pool,density,stall", [
    (0, 2, 12, 3, 2, 9, 2, 0.5, 0.3),   # whole-kernel tiles, a ring of 6 of 10 rows
    (1, 1, 12, 3, 1, 1, 1, 0.6, 0.0),   # one offset a cycle, 4 of 10 rows, no stalls
    (2, 3, 11, 2, 3, 2, 2, 0.3, 0.3),   # part-row tiles, pool 2, three passes
    (3, 2, 7, 3, 2, 3, 1, 0.5, 0.3),    # K + pool close to H: the ring is the whole map
    (4, 1, 18, 5, 1, 25, 2, 0.3, 0.5),  # 5x5, the default's tiling, a ring of 10 of 14 rows
    (5, 1, 14, 2, 2, 4, 1, 0.1, 0.3),   # very sparse: most rows without an input
])
@pytest.mark.parametrize("accumulators", ["word", "kernel"])
def test_ring_conv_engine(seed, c, size, kernel, lanes, offsets, pool, density, stall,
                          accumulators):
    """Random layers and inputs, position-major, with random stalls on both streams."""
    rng = np.random.default_rng(seed)
    layer = conv_layer(rng, c=c, size=size, k=kernel, out=5, n=2 + (accumulators == "kernel"))
    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer), offsets=offsets,
                         accumulators=accumulators)
    run_ring(layer, config, pool, sparse_rows(rng, layer.in_shape, 3, density),
             stall=stall, seed=seed)


@pytest.mark.parametrize("accumulators", ["word", "kernel"])
def test_ring_back_to_back_dense_inputs_with_output_backpressure(accumulators):
    """Dense inputs back to back and a slow consumer: the ring fills, the scatter waits for
    the drain, and the next input waits for the previous one's tail."""
    rng = np.random.default_rng(7)
    layer = conv_layer(rng, c=1, size=10, k=3, out=4, n=2)
    config = LayerConfig(lanes=2, acc_bits=accumulator_bits(layer), offsets=3,
                         accumulators=accumulators)
    xs = rng.integers(1, 128, (3, *layer.in_shape)).astype(np.int8)
    run_ring(layer, config, 2, xs, stall=0.7, seed=3)


def test_ring_holds_only_a_window_of_rows():
    """The ring's banks hold K + pool rows or more (a power of two of entry rows), single
    buffered, instead of the whole map twice."""
    tiling = Tiling(5, 25, (28, 28), 1, window=7)
    assert (tiling.bank_h, tiling.ring_rows, tiling.depth) == (2, 10, 12)
    assert Tiling(5, 1, (28, 28), 1, window=7).ring_rows == 8
    assert Tiling(5, 25, (10, 10), 1, window=7).ring_rows == 10  # the whole map
    with pytest.raises(ValueError, match="window"):
        Tiling(5, 25, (28, 28), 1, window=0)
    with pytest.raises(ValueError, match="ring of"):
        RowWindow((1, 32, 32), Tiling(5, 1, (28, 28), 1, window=3), 2)
    with pytest.raises(TypeError, match="position_major"):
        rng = np.random.default_rng(0)
        layer = conv_layer(rng, c=1, size=6, k=3, out=4, n=2)
        ConvEngine(layer, LayerConfig(lanes=2, acc_bits=32), position_major=1)


@pytest.mark.parametrize("accumulators", ["word", "kernel"])
@pytest.mark.parametrize("offsets", [1, 9])
def test_ring_reads_a_row_once_its_last_sum_is_written(offsets, accumulators):
    """An input whose only activation is at (0, 0) writes output (0, 0), the first word the
    drain reads, with its last item: the drain must wait exactly until that write lands."""
    rng = np.random.default_rng(8)
    layer = conv_layer(rng, c=2, size=8, k=3, out=4, n=2)
    config = LayerConfig(lanes=2, acc_bits=accumulator_bits(layer), offsets=offsets,
                         accumulators=accumulators)
    xs = np.zeros((3, *layer.in_shape), np.int8)
    xs[:, 1, 0, 0] = [100, -77, 5]
    xs[2, 0, 0, 1] = 9
    run_ring(layer, config, 1, xs, stall=0.0, seed=0)


def test_channel_major_first_layer_keeps_the_whole_map():
    """A first layer with C > 1 reads NetSpec flat (channel-major) order: the generator builds
    it with the double-buffered whole map, which is bit-exact in that order; a one-channel
    first layer and every later conv get the ring."""
    from cosparse.hw.top import engine_for, plan, position_major_input
    from cosparse.sw.netspec import random_netspec

    stages = plan(random_netspec(4))  # conv1 on (2, 12, 12), conv2 after it
    assert [position_major_input(s, i) for i, s in enumerate(stages)][:2] == [False, True]
    assert position_major_input(plan(random_netspec(1))[0], 0)  # (1, 9, 9)
    assert engine_for(stages[0], LayerConfig(lanes=2, acc_bits=32, offsets=1), 0)._window is None
    rng = np.random.default_rng(9)
    layer = conv_layer(rng, c=3, size=8, k=3, out=4, n=2)
    config = LayerConfig(lanes=2, acc_bits=accumulator_bits(layer), offsets=3)
    engine = ConvEngine(layer, config, pool=2)
    xs = sparse_rows(rng, layer.in_shape, 3, 0.5)
    beats, expected = [], []
    for x in xs:
        beats += sparse_beats(x)  # flat order: channel-major
        expected += as_vectors(conv_expected(layer, x, 2), layer.out_channels)
    got, _ = run_stream_bench(engine, beats, len(expected), seed=9)
    assert [[int(v) for v in o.values] for o in got] == expected
