"""Sparse-IFT: Sparse Wide and Sparse Parallel keep the packed slots and export exactly."""
import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cosparse.sw import features, golden, netspec
from cosparse.sw import train as tr
from cosparse.sw.export import export_model
from cosparse.sw.export.fake_quant import predict
from cosparse.sw.model import GSCNet, NetConfig
from cosparse.sw.model.gsc_net import BRANCHED
from cosparse.sw.model.ift import sparse_parallel, sparse_wide, transform
from cosparse.sw.model.masks import learnable_layers

sys.path.insert(0, str(Path(__file__).parent))
from test_masks import SMALL, _check_partition, _run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _slots(config):
    return {k: v["packed"] for k, v in GSCNet(config).count_parameters().items()}


def _winners(config):
    model = GSCNet(config)
    return [m.k for m in model.kwinners().values()]


def test_wide_keeps_the_packed_slots_and_the_winners_or_the_density():
    base, wide = _slots(SMALL), _slots(sparse_wide(SMALL))  # k = 2: every group whole
    assert wide == base
    config = sparse_wide(NetConfig())
    assert (config.conv1_channels, config.n1, config.conv2_channels, config.n2, config.hidden,
            config.n3, config.n4) == (128, 8, 128, 32, 3000, 80, 8)
    assert _winners(config) == _winners(NetConfig()) == [8, 8, 150]
    dense = sparse_wide(NetConfig(), keep="density")
    assert _winners(dense) == [16, 16, 300]
    assert dense.replace(conv1_density=0.0625, conv2_density=0.0625, hidden_density=0.05) == config
    base, wide = _slots(NetConfig()), _slots(config)
    assert wide["conv1"] == base["conv1"] and wide["conv2"] == base["conv2"]
    # 3000 / 80 = 37.5 groups: the partial last group costs 1.3% more fc1 slots; fc2's fan-in
    # doubles while its 12 outputs make 2 groups of n4 = 8, not 1.5
    assert wide["fc1"] == 38 * 3200 and wide["fc2"] == 2 * 3000
    assert wide["total"] / base["total"] < 1.03


def test_wide_keeping_the_density_keeps_the_useful_macs():
    """groups x active inputs: conv2 and fc1 do the same useful MACs, checked on a random net."""
    def macs(config):
        torch.manual_seed(0)
        model, x = _calibrated(config)
        spec, _ = export_model(model, x)
        stats = golden.run(spec, x, keep_activations=False).stats
        return {layer.name: float(s.useful_macs.mean())
                for layer, s in zip(spec.packed_layers, stats)}
    base, wide = macs(SMALL), macs(sparse_wide(SMALL, keep="density"))
    assert wide["conv1"] == base["conv1"]
    for name in ("conv2", "fc1"):  # winners are k-WTA ties away from exact
        assert wide[name] == pytest.approx(base[name], rel=0.02)


def test_parallel_keeps_shapes_and_slots_and_deals_each_support_evenly():
    config = sparse_parallel(SMALL)
    assert config.branches == 4 and config.ift == "parallel"
    model = GSCNet(config)
    assert _slots(config) == _slots(SMALL)
    for name in BRANCHED:
        layer = getattr(model, name)
        owned = layer.packed_weight_2d().detach() != 0
        per_branch = torch.stack([(owned & (layer.branch_of.long() == b)).sum(1)
                                  for b in range(4)])
        assert (per_branch.max(0).values - per_branch.min(0).values).max() <= 1
    assert model.fc2.branches == 1


def _calibrated(config, seed=0, steps=3):
    """A model whose batch norms (the branches' too) hold non-trivial running statistics."""
    torch.manual_seed(seed)
    model = GSCNet(config)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, (64, 1, 32, 32)).astype(np.int8)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.from_numpy(features.dequantise_features(x)))
    return model.eval(), x


@pytest.mark.parametrize("method", ("static", "gmp"))
def test_parallel_folds_exactly_and_keeps_masks_complementary(method):
    model = GSCNet(sparse_parallel(SMALL))
    if method == "gmp":
        _run(model, "gmp", steps=8)  # checks every group a partition at every step
    else:
        torch.manual_seed(1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model.train()
        for _ in range(6):
            loss = model(torch.rand(8, 1, 32, 32)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    folded = model.folded()
    assert folded.config.branches == 1 and folded.config.ift == "parallel"
    assert not folded.training
    x = torch.rand(16, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    for (name, layer), (_, flat) in zip(learnable_layers(model), learnable_layers(folded)):
        assert torch.equal(layer.slot_kernel, flat.slot_kernel), name
        _check_partition(flat)
    assert any(not torch.equal(getattr(model, n).packed, getattr(folded, n).packed)
               for n in BRANCHED)  # the branches' batch norms were folded in


@pytest.mark.parametrize("variant", ("wide", "parallel"))
def test_export_packs_exactly_and_golden_follows_the_float_model(variant):
    model, x = _calibrated(transform(SMALL, variant), seed=3)
    model = model.folded()
    spec, quantised = export_model(model, x)
    for (_, layer), packed in zip(learnable_layers(model), spec.packed_layers):
        ids = layer.slot_kernel.numpy()
        np.testing.assert_array_equal(packed.kernel_ids,
                                      np.where(ids < 0, 255, ids).astype(np.uint8))
        assert packed.weights.size == layer.groups * layer.fan_in
    assert [l.n for l in spec.packed_layers] == [model.config.n1, model.config.n2,
                                                 model.config.n3, model.config.n4]
    test = np.random.default_rng(4).integers(0, 128, (200, 1, 32, 32)).astype(np.int8)
    scales = [q.output_scale for q in quantised[:-1]]
    agree = (predict(model, test, scales) == golden.run(spec, test).predictions).mean()
    assert agree >= 0.99


def test_train_and_export_record_the_variant(tmp_path, monkeypatch):
    from cosparse.sw import commands, inputs
    g = torch.Generator().manual_seed(2)
    X = torch.randint(0, 128, (48, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (48,), generator=g)
    parser = tr.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", "d", "--out", "o", "--ift", "parallel",
                              "--ift-sparsity", "0.5", "--n2", "4"])
    config = tr.config_from_args(args)
    assert (config.ift, config.branches, config.n2) == ("parallel", 2, 4)
    assert tr.config_from_args(parser.parse_args(["--data", "d", "--out", "o"])).ift == "none"
    tr.train(sparse_parallel(SMALL, 0.5), out_dir=tmp_path / "run", epochs=1, batch_size=16,
             data={"train": (X, y), "validation": (X[:16], y[:16])}, progress=False,
             threads=1, mask="gmp")
    ckpt = tr.read_checkpoint(tmp_path / "run" / "best.pt")
    assert (ckpt["config"]["ift"], ckpt["config"]["branches"]) == ("parallel", 2)
    monkeypatch.setattr(inputs, "from_dataset", lambda *a, **k: inputs.Inputs(
        X.numpy(), y.numpy(), [str(i) for i in range(len(y))]))
    sub = argparse.ArgumentParser().add_subparsers()
    commands.register_export(sub)
    export = sub.choices["export"].parse_args(["--checkpoint", str(tmp_path / "run" / "best.pt"),
                                               "--data", "unused", "--out", str(tmp_path / "spec")])
    assert export.func(export) == 0
    assert netspec.load_metadata(tmp_path / "spec")["ift"] == {"variant": "parallel",
                                                               "branches": 2}
    spec = netspec.load(tmp_path / "spec")
    assert [l.n for l in spec.packed_layers] == [SMALL.n1, SMALL.n2, SMALL.n3, SMALL.n4]
    with pytest.raises(ValueError, match="Sparse Parallel network with 2 branches"):
        tr.train(None, out_dir=tmp_path / "qat", epochs=1, progress=False,
                 data={"train": (X, y), "validation": (X[:16], y[:16])},
                 qat_from=tmp_path / "run" / "best.pt")


def test_bad_ift_settings_are_named():
    with pytest.raises(ValueError, match="ift must be one of none, wide, parallel, got 'tall'"):
        NetConfig(ift="tall")
    with pytest.raises(ValueError, match="branches = 2 needs ift='parallel'"):
        NetConfig(branches=2)
    with pytest.raises(ValueError, match="at least 2"):
        sparse_parallel(SMALL, 0.3)
    with pytest.raises(ValueError, match="ift sparsity must be in"):
        sparse_wide(SMALL, 1.0)
    with pytest.raises(ValueError, match="ift keep must be one of winners, density"):
        sparse_wide(SMALL, keep="macs")
    with pytest.raises(ValueError, match="untransformed"):
        sparse_wide(sparse_wide(SMALL))
    with pytest.raises(ValueError, match="ift must be one of"):
        transform(SMALL, "deep")
    assert transform(SMALL, "none") is SMALL


@pytest.mark.parametrize("variant", ("wide", "parallel"))
def test_a_pattern_holds_through_gmp_and_the_fold(variant):
    from cosparse.sw.netspec.pattern import parse_pattern
    model = GSCNet(transform(SMALL.replace(pattern="block:2"), variant))
    _run(model, "gmp", steps=6)
    for _, layer in learnable_layers(model.eval().folded()):
        ids = layer.slot_kernel.long()
        ids = torch.where(ids < 0, 255, ids).numpy().astype(np.uint8)
        assert parse_pattern(layer.pattern).violation(ids, layer.pattern_kernel) is None
        _check_partition(layer)
