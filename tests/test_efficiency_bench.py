"""bench/efficiency.py: the multiplier-cycle breakdown and the grouped-beat item count agree
with the cost model and the golden model's useful MACs on random networks (fast, no simulation)."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cosparse.hw import cost
from cosparse.hw.config import HwConfig
from cosparse.hw.engine.conv import conv_tiling
from cosparse.hw.generate import _conv_items
from cosparse.hw.top import position_major_input
from cosparse.sw import golden
from cosparse.sw.netspec import Conv2d, random_inputs, random_netspec

_PATH = Path(__file__).resolve().parents[1] / "bench" / "efficiency.py"
_SPEC = importlib.util.spec_from_file_location("bench_efficiency", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _convs(seeds, strided):
    """(profile, index, layer) of every stride-1, position-major conv with C > 1 of the seeds
    (``strided``: random strides and zero padding, :func:`random_netspec`)."""
    for seed in seeds:
        spec = random_netspec(seed, max_channels=6, max_size=10, strided=strided)
        prof = cost.profile(spec, random_inputs(spec, 3, seed=seed))
        for index, stage in enumerate(prof.stages):
            layer = stage.layer
            if isinstance(layer, Conv2d) and layer.stride == 1 and layer.in_shape[0] > 1 \
                    and position_major_input(stage, index):
                yield prof, index, layer


@pytest.mark.parametrize("strided", [False, True])
def test_grouped_items_match_the_engine_and_the_useful_products(strided):
    found = 0
    for prof, index, layer in _convs(range(12), strided):
        found += 1
        x = prof.x_in[index]
        # One beat per item, the whole kernel per tile: today's engine in one pass.
        cfg = dataclasses.replace(HwConfig.default_for(prof.spec).layers[index],
                                  engine="scatter", lanes=layer.groups, offsets=layer.kernel ** 2)
        whole = conv_tiling(layer, cfg, prof.stages[index].pool, True)
        assert np.array_equal(bench.grouped_items(x, layer, 1, (layer.kernel,) * 2),
                              _conv_items(x, whole, False))
        # One offset per item: every slot lands, so items x groups are the useful products.
        assert np.array_equal(bench.grouped_items(x, layer, 1, (1, 1)) * layer.groups,
                              golden.useful_macs(x, layer))
        # Grouping beats never adds items, and all of a position's beats make one item per
        # offset that the position reaches.
        full = bench.grouped_items(x, layer, layer.in_shape[0], (1, 1))
        assert np.all(full <= bench.grouped_items(x, layer, 2, (1, 1)))
        occupied = (x != 0).any(axis=1, keepdims=True).astype(np.int8)
        assert np.array_equal(full, bench.grouped_items(occupied, layer, 1, (1, 1)))
    assert found, "no stride-1 position-major conv with C > 1 among the seeds"


def test_breakdown_accounts_for_every_multiplier_cycle():
    spec = random_netspec(3, max_channels=6, max_size=10)
    prof = cost.profile(spec, random_inputs(spec, 3, seed=3))
    config = HwConfig.default_for(spec)
    got = bench.breakdown(prof, config)
    assert sum(r["useful"] for r in got["layers"]) == pytest.approx(prof.useful_macs)
    for r in got["layers"]:
        assert r["useful"] <= r["issued"] + 1e-9 <= r["mult_cycles"] + 1e-6
        assert r["mult_cycles"] == pytest.approx(r["issued"] + r["idle"])
    assert got["efficiency"] == pytest.approx(
        prof.useful_macs / (got["multipliers"] * got["interval"]))


def test_grouped_items_refuse_a_stride():
    spec = next(random_netspec(seed, max_channels=4, max_size=10, strided=True)
                for seed in range(50)
                if any(isinstance(l, Conv2d) and l.stride > 1
                       for l in random_netspec(seed, max_channels=4, max_size=10,
                                               strided=True).packed_layers))
    layer = next(l for l in spec.packed_layers if isinstance(l, Conv2d) and l.stride > 1)
    x = np.ones((1, *layer.in_shape), np.int8)
    with pytest.raises(ValueError, match="stride 1 only"):
        bench.grouped_items(x, layer, 1, (1, 1))
