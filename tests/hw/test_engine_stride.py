"""Conv engines with stride and zero padding against the golden model (both accumulator kinds)."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw.config import LayerConfig, accumulator_bits
from cosparse.hw.engine import ConvEngine
from cosparse.hw.engine.tiling import Tiling

# A constructor that rejects its parameters leaves parts Amaranth reports as unused.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

sys.path.insert(0, str(Path(__file__).parent))
from _engine_util import run_stream_bench, sparse_beats  # noqa: E402
from test_engine import as_vectors, conv_expected, conv_layer, random_batch  # noqa: E402
from test_engine_ring import raster_beats, sparse_rows  # noqa: E402


def strided_layer(rng, c, size, k, stride, padding, out=5, n=2):
    """A random conv layer with ``stride`` and ``padding``."""
    return dataclasses.replace(conv_layer(rng, c=c, size=size, k=k, out=out, n=n),
                               stride=stride, padding=padding)


@pytest.mark.parametrize("seed,c,size,kernel,stride,padding,lanes,offsets,pool,ring", [
    (0, 2, 8, 3, 1, 1, 2, 9, 2, False),   # "same" padding, whole-kernel tiles, pooled
    (1, 2, 9, 3, 2, 0, 1, 1, 1, False),   # stride 2, one offset a cycle: tiles skipped
    (2, 1, 9, 3, 2, 1, 2, 3, 1, True),    # stride 2 and padding, row tiles, ring
    (3, 3, 10, 2, 2, 1, 3, 2, 2, True),   # part-row tiles, pool 2, ring, three passes
    (4, 1, 12, 5, 2, 2, 1, 25, 1, True),  # 5x5 whole kernel, stride 2, padding 2, ring
    (5, 2, 8, 3, 3, 2, 2, 3, 1, False),   # stride 3: inputs that reach no output
    (6, 1, 11, 1, 2, 0, 2, 1, 1, True),   # 1x1 stride 2: odd rows and columns reach nothing
    (7, 1, 14, 4, 1, 3, 1, 8, 1, True),   # padding K - 1 ("full"), two-row tiles, ring
])
def test_strided_conv_engine(seed, c, size, kernel, stride, padding, lanes, offsets, pool,
                             ring):
    """Random layers and inputs, channel-major (double-buffered) or position-major (ring),
    with random stalls on both streams; every output and every ``last`` as golden."""
    rng = np.random.default_rng(seed)
    layer = strided_layer(rng, c, size, kernel, stride, padding)
    config = LayerConfig(lanes=lanes, acc_bits=accumulator_bits(layer), offsets=offsets)
    engine = ConvEngine(layer, config, pool=pool, position_major=ring)
    xs = sparse_rows(rng, layer.in_shape, 3, 0.5) if ring else \
        random_batch(rng, layer.in_shape, 3)
    beats, expected = [], []
    for x in xs:
        beats += raster_beats(x) if ring else sparse_beats(x, rng)
        expected += as_vectors(conv_expected(layer, x, pool), layer.out_channels)
    got, _ = run_stream_bench(engine, beats, len(expected), stall=0.3, seed=seed)
    assert [[int(v) for v in o.values] for o in got] == expected
    per_input = len(expected) // len(xs)
    assert [i for i, o in enumerate(got) if o.last] == [per_input * (i + 1) - 1
                                                         for i in range(len(xs))]


def test_axis_table_follows_the_convolution():
    """Each (coordinate, tile, bank) entry of the axis table is an offset that reaches that
    output, and every (input, output) pair of the convolution is in the table exactly once."""
    for k, stride, padding, offsets in [(3, 2, 1, 1), (3, 1, 2, 3), (4, 3, 2, 2), (5, 2, 0, 25)]:
        size = 9
        out = (size + 2 * padding - k) // stride + 1
        tiling = Tiling(k, offsets, (out, out), 1, stride=stride, padding=padding)
        table = tiling.rows_axis(size)
        pairs = set()
        for v, per_tile in enumerate(table.slots):
            for tile, banks in enumerate(per_tile):
                for b, (ok, src, addr) in enumerate(banks):
                    if ok:
                        o = addr * tiling.rows + b
                        assert o * stride + tile * tiling.rows + src - padding == v
                        pairs.add((v, o, tile * tiling.rows + src))
            assert table.tiles[v] == [t for t, banks in enumerate(per_tile)
                                      if any(ok for ok, _, _ in banks)]
        assert pairs == {(o * stride + ky - padding, o, ky) for o in range(out)
                         for ky in range(k) if 0 <= o * stride + ky - padding < size}


def test_bad_stride_and_padding():
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        Tiling(3, 1, (3, 3), 1, stride=0)
    with pytest.raises(ValueError, match="padding must be an integer from 0 to kernel - 1 = 2, "
                                         "got 3"):
        Tiling(3, 1, (3, 3), 1, padding=3)
