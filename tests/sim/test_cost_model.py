"""The cost model (hw/cost.py, hw/latency.py) against cycle-accurate simulation.

Each pair is a tiny random network and a config drawn from the explorer's options
(bench/cost_model_pairs.py), simulated on 8 inputs in Amaranth's own simulator
(sim/pysim.py: the AXI4-Stream top, no build, a few seconds a pair): the modelled
interval and latency must be within 10% of the measured ones on every pair.
:data:`VERILATOR_PAIRS` also go through Verilator, which must give the very same
cycle counts (same RTL, both cycle-accurate). bench/results/cost-model-pairs.json
holds the figures of :data:`PAIRS`.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _sim_util import needs_verilator  # noqa: E402
from cost_model_pairs import measure, model, pair, simulate  # noqa: E402

from cosparse.hw.top import plan  # noqa: E402

#: Pairs simulated in CI (Amaranth): of seeds 0-59 those quickest to simulate (fewer than
#: 4,000 cycles, no wide k-WTA of many lanes), and 51, 86, 164, 186 and 241, bound by a
#: local k-WTA.
PAIRS = (1, 2, 3, 6, 7, 8, 9, 12, 16, 17, 18, 19, 20, 21, 23, 24, 25, 29, 31, 32, 33, 34, 35,
         36, 37, 38, 51, 86, 164, 186, 241)

#: Pairs drawn with a gather engine wherever one is offered (``--gather``), simulated in CI.
GATHER_PAIRS = (7, 37)

#: Pairs also simulated through Verilator (a build each, ~30-60 s).
VERILATOR_PAIRS = (1, 6)

#: Relative tolerance of the modelled interval and latency.
TOLERANCE = 0.10


def _check(row):
    assert row["bit_exact"], row
    assert abs(row["interval_error"]) <= TOLERANCE, row
    assert abs(row["latency_error"]) <= TOLERANCE, row


@pytest.mark.parametrize("seed", PAIRS)
def test_model_matches_simulation(seed):
    _check(measure(seed))


@pytest.mark.parametrize("seed", GATHER_PAIRS)
def test_model_matches_simulation_with_a_gather_engine(seed):
    spec, config, _ = pair(seed, gather=True)
    assert "gather" in [cfg.engine for cfg in config.layers]
    _check(measure(seed, gather=True))


def _data_dependent(seed) -> bool:
    """Whether pair ``seed``'s modelled bottleneck does activation-dependent work: a scatter
    conv engine or a local k-WTA."""
    spec, config, _ = pair(seed)
    name = model(seed)["bottleneck"]
    for stage, cfg in zip(plan(spec), config.layers):
        if name == stage.layer.name and stage.layer.kind == "conv2d":
            return cfg.engine == "scatter"
        if name == f"after {stage.layer.name}":
            return stage.kwta is not None and stage.kwta.mode == "local"
    return False


def test_pairs_cover_data_dependent_bottlenecks():
    """The requirement: some pairs are bound by a stage whose work follows the activations."""
    assert len(PAIRS) >= 30
    assert sum(_data_dependent(seed) for seed in PAIRS) >= 10


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cost-model-cache")


@needs_verilator
@pytest.mark.parametrize("seed", VERILATOR_PAIRS)
def test_verilator_gives_the_same_cycles(seed, cache):
    row = measure(seed, "verilator", cache=cache)
    _check(row)
    amaranth = simulate(seed, "amaranth")
    assert (amaranth["latency"], amaranth["interval"]) == (row["latency_sim"],
                                                           row["interval_sim"])


def test_amaranth_measure_names_bad_arguments():
    from cosparse.sim.pysim import measure as pysim_measure
    spec, config, x = pair(PAIRS[0])
    with pytest.raises(TypeError, match="spec must be a NetSpec"):
        pysim_measure("net", x, config)
    with pytest.raises(ValueError, match="no inputs to simulate"):
        pysim_measure(spec, x[:0], config)
