"""Localising a mismatch: replay each unit on its golden input and name the first that differs."""

import dataclasses
import shutil

import numpy as np
import pytest

from cosparse.sim.bench_engine import localise, replay_units
from cosparse.sw import golden
from cosparse.sw.netspec import NetSpec, random_inputs, random_netspec

SEED = 1  # conv1 (+ fused pool1) -> kwta1 -> conv2 -> fc1 -> kwta_fc1 -> out


def perturbed(spec: NetSpec, name: str, delta: int) -> NetSpec:
    """``spec`` with ``delta`` added to every bias of layer ``name`` (the injected fault)."""
    layers = tuple(dataclasses.replace(layer, bias=(layer.bias.astype(np.int64) + delta)
                                       .astype(np.int32)) if layer.name == name else layer
                   for layer in spec.layers)
    return dataclasses.replace(spec, layers=layers)


@pytest.fixture(scope="module")
def net():
    spec = random_netspec(SEED)
    x = random_inputs(spec, 1, seed=3)[0]
    return spec, x, golden.run(spec, x[None])


def test_healthy_network_every_unit_agrees(net):
    spec, x, _ = net
    records = replay_units(spec, x, stop_at_first=False)
    assert all(r["ok"] for r in records), [r for r in records if not r["ok"]]
    assert [f"{r['unit']}:{r['layer']}" for r in records] == [
        "input_sparsifier:input", "engine:conv1", "kwta:kwta1", "engine:conv2",
        "sparsifier:conv2", "engine:fc1", "kwta:kwta_fc1", "engine:out", "argmax:argmax"]
    report = localise(spec, x)
    assert report["first_diverging_layer"] is None and "every unit matches" in report["note"]


def test_several_features_a_beat_replay_has_no_input_sparsifier(net):
    """With ``input_width`` above 1 the window engine reads the features itself: the replay
    feeds it dense raster beats, every unit agrees, and no input Sparsifier is replayed."""
    from cosparse.hw.config import HwConfig
    spec, x, _ = net
    config = HwConfig.default_for(spec)
    assert config.layers[0].engine == "window"
    w = spec.input.shape[2]
    width = next(d for d in range(2, w + 1) if w % d == 0)
    records = replay_units(spec, x, config=dataclasses.replace(config, input_width=width),
                           stop_at_first=False)
    assert all(r["ok"] for r in records), [r for r in records if not r["ok"]]
    assert records[0]["unit"] == "engine" and len(records) == 8


@pytest.mark.parametrize("name,delta", [("conv1", 4000), ("conv2", -3000), ("out", 1)])
def test_injected_bias_fault_is_named(net, name, delta):
    """Hardware from a NetSpec with one layer's bias perturbed, golden from the original.
    conv2 - 3000 changes conv2's activations but not the logits: the replay still sees it."""
    spec, x, truth = net
    faulty = perturbed(spec, name, delta)
    wrong = golden.run(faulty, x[None]).activations
    assert any(not np.array_equal(wrong[k], truth.activations[k]) for k in wrong)  # precondition
    report = localise(faulty, x, activations=truth.activations)
    assert report["first_diverging_layer"] == name, report
    assert report["unit"] == "engine"
    d = report["first_difference"]
    want = truth.activations[report["compared_with"]][0].reshape(-1)
    assert d["expected"] == want[d["index"]] != d["got"]
    assert name in report["note"] and "expected" in report["note"]


def test_activations_without_batch_axis(net):
    spec, x, truth = net
    faulty = perturbed(spec, "conv2", -3000)
    acts = {k: v[0] for k, v in truth.activations.items()}
    assert localise(faulty, x, activations=acts)["first_diverging_layer"] == "conv2"


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="apt-get install iverilog")
def test_simulate_mismatch_names_faulty_layer(net, tmp_path, monkeypatch):
    """End to end: Icarus runs a network whose conv2 bias is off while golden uses the
    original; the report's localisation names conv2."""
    from cosparse.sim.run import simulate
    spec, x, truth = net
    faulty = perturbed(spec, "conv2", 3000)  # (-3000 is masked downstream: no mismatch)
    assert not np.array_equal(golden.run(faulty, x[None]).logits, truth.logits)
    real = golden.run
    monkeypatch.setattr(golden, "run", lambda _spec, xs, **kw: real(spec, xs, **kw))
    report = simulate(faulty, x[None], simulator="icarus", progress=False, cache=tmp_path,
                      stress=0)
    assert not report["summary"]["all_bit_exact"]
    loc = report["localisation"]
    assert loc["input"] == 0 and loc["first_diverging_layer"] == "conv2", loc


def test_widths_network_every_unit_agrees():
    """NetSpec version 2: engines emit signed(8 + f) values to k-WTAs that round them (seed 8:
    16-bit conv1, fc1 with f = 2 into a global k-WTA of 1,024 bins)."""
    spec = random_netspec(8, widths=True)
    x = random_inputs(spec, 1, seed=2)[0]
    records = replay_units(spec, x, stop_at_first=False)
    assert all(r["ok"] for r in records), [r for r in records if not r["ok"]]
    assert "kwta:kwta_fc1" in [f"{r['unit']}:{r['layer']}" for r in records]
