"""Structured complementary patterns (N:M, block): definitions, training, export, NetSpec."""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cosparse.sw import train as tr
from cosparse.sw.model import CompSparseConv2d, CompSparseLinear, GSCNet
from cosparse.sw.model.complementary import EMPTY
from cosparse.sw.model.masks import MaskSettings, learnable_layers, make_scheduler
from cosparse.sw.model.patterns import assign_nm, draw, layer_patterns
from cosparse.sw.netspec import EMPTY_SLOT, NetSpecError, load, random_netspec, save
from cosparse.sw.netspec.pattern import parse_pattern

sys.path.insert(0, str(Path(__file__).parent))
from test_masks import SMALL, _check_partition, _run  # noqa: E402

NM = "conv1=nm:1:4,conv2=nm:2:8,fc1=nm:1:8,fc2=nm:1:2"  # SMALL's n: 4, 4, 8, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ids(layer):
    ids = layer.slot_kernel.long()
    return torch.where(ids == EMPTY, EMPTY_SLOT, ids).numpy().astype(np.uint8)


def _check_pattern(layer):
    assert parse_pattern(layer.pattern).violation(_ids(layer), layer.pattern_kernel) is None


def test_parse_names_bad_patterns():
    assert str(parse_pattern("nm:2:4")) == "nm:2:4" and str(parse_pattern("block:4")) == "block:4"
    assert not parse_pattern("random").structured
    for bad in ("nm:2", "block", "blocks:4", "nm:2:4:1", ""):
        with pytest.raises(ValueError, match=f"pattern {bad!r} is not understood"):
            parse_pattern(bad)
    with pytest.raises(ValueError, match="block size K must be >= 1, got 0"):
        parse_pattern("block:0")
    with pytest.raises(ValueError, match="1 <= N <= M, got N = 5, M = 4"):
        parse_pattern("nm:5:4")
    with pytest.raises(ValueError, match=r"layer 'fc1': pattern nm:1:4 needs n \* N == M.*n = 8"):
        layer_patterns("nm:1:4", {"conv1": 4, "fc1": 8})
    with pytest.raises(ValueError, match="LAYER=PATTERN with LAYER one of conv1, fc1"):
        layer_patterns("conv3=block:2", {"conv1": 4, "fc1": 8})
    with pytest.raises(ValueError, match="dense"):
        layer_patterns("fc1=block:2", {"conv1": 4, "fc1": 1})
    assert {k: str(v) for k, v in layer_patterns("block:2", {"a": 4, "b": 1}).items()} == \
        {"a": "block:2", "b": "random"}


def test_units_run_along_channels_for_conv_and_along_the_fan_in_for_linear():
    # conv, 5 channels, 2x2 kernel: block b of offset o is channels [2b, 2b+2) at o.
    units = parse_pattern("block:2").units(5 * 4, kernel=2)
    assert units.reshape(5, 4).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7],
                                            [4, 5, 6, 7], [8, 9, 10, 11]]
    assert parse_pattern("block:3").units(7).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert parse_pattern("nm:1:4").units(10, kernel=3).tolist() == [0] * 4 + [1] * 4 + [2] * 2


@pytest.mark.parametrize("pattern,sizes,fan_in,kernel", [
    ("block:4", [3, 3, 2], 6 * 9, 3), ("block:3", [4], 10, 1), ("nm:2:6", [3, 3, 1], 20, 1),
    ("nm:1:4", [4, 4], 3 * 4, 2)])
def test_static_draw_follows_the_pattern_and_covers_full_groups(pattern, sizes, fan_in, kernel):
    slot_kernel = draw(pattern, sizes, fan_in, torch.Generator().manual_seed(1), kernel)
    ids = torch.where(slot_kernel == EMPTY, EMPTY_SLOT, slot_kernel).numpy().astype(np.uint8)
    structure = parse_pattern(pattern)
    assert structure.violation(ids, kernel) is None
    for g, n_g in enumerate(sizes):
        if structure.kind == "block" or n_g * structure.n == structure.m:
            assert (slot_kernel[g] != EMPTY).all() and slot_kernel[g].max() == n_g - 1
    if structure.kind == "nm":  # a full group: each kernel exactly N of every full run
        counts = np.stack([(ids[0, :fan_in // structure.m * structure.m]
                            .reshape(-1, structure.m) == j).sum(1) for j in range(sizes[0])])
        assert (counts == structure.n).all()


def test_assign_nm_keeps_the_largest_candidates_within_n_per_run():
    # one group of 2 kernels, one run of 4 slots, N = 2
    score = torch.tensor([[[9.0, 8.0, 7.0, 0.0], [1.0, 2.0, 3.0, 4.0]]])
    assert assign_nm(score, [2], 2, 4).tolist() == [[0, 0, 1, 1]]
    # a partial group (1 kernel of 2) leaves the slots it cannot take empty
    assert assign_nm(score, [1], 2, 4).tolist() == [[0, 0, EMPTY, EMPTY]]


def test_layers_refuse_an_assignment_that_breaks_their_pattern():
    layer = CompSparseLinear(8, 4, 2, pattern="block:4")
    _check_pattern(layer)
    bad = layer.slot_kernel.long().clone()
    bad[0, 0] = 1 - bad[0, 1]
    with pytest.raises(ValueError, match="breaks pattern block:4: group 0, block 0"):
        layer.set_assignment(bad, layer.packed.detach())
    with pytest.raises(ValueError, match="n = 4 kernels per group"):
        CompSparseConv2d(2, 8, 3, 4, pattern="nm:1:2")


@pytest.mark.parametrize("method,pattern", [
    ("static", "block:4"), ("magnitude", "block:2"), ("gmp", "block:4"), ("magnitude", NM),
    ("gmp", NM), ("gmp", "conv2=block:8,fc1=nm:1:8")])
def test_training_keeps_the_pattern_at_every_step(method, pattern):
    model = GSCNet(SMALL.replace(pattern=pattern))
    for _, layer in learnable_layers(model):
        _check_pattern(layer)
    if method != "static":
        before = {n: l.slot_kernel.clone() for n, l in learnable_layers(model)}
        masks = _run(model, method, steps=10, every=2, check=lambda _: [
            _check_pattern(l) for _, l in learnable_layers(model)])
        assert masks.deployable
        assert any(not torch.equal(before[n], l.slot_kernel) for n, l in learnable_layers(model))
    for _, layer in learnable_layers(model):
        _check_partition(layer)
        _check_pattern(layer)
        structure = parse_pattern(layer.pattern)
        if structure.kind == "nm":  # full groups: every kernel N of every full run
            fan = layer.kernel_fan_in()
            assert (fan >= structure.n * (layer.fan_in // structure.m)).all()
            assert int(fan.sum()) == layer.groups * layer.fan_in


def test_block_pruning_keeps_each_blocks_largest_kernel():
    model = GSCNet(SMALL.replace(pattern="fc2=block:4"))
    masks = make_scheduler(MaskSettings("magnitude"), model, 4, 0)
    layer = model.fc2
    index = [n for n, _ in learnable_layers(model)].index("fc2")
    cand = masks.candidates[index]
    with torch.no_grad():
        cand.copy_(torch.randn_like(cand))
    masks.prune(1.0)
    masks.commit()
    norms = cand.detach().abs().view(layer.out_features, -1, 4).sum(2)  # before the prune
    ids = layer.slot_kernel.long().view(layer.groups, -1, 4)[:, :, 0]
    best = norms.view(layer.groups, layer.n, -1).argmax(1)
    assert torch.equal(ids, best)


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dynamic_sparse_training_refuses_a_pattern(method):
    model = GSCNet(SMALL.replace(pattern="block:2"))
    with pytest.raises(ValueError, match=f"--mask {method} .* break layer 'conv1''s pattern "
                                         "block:2; use --mask static, magnitude or gmp"):
        make_scheduler(MaskSettings(method), model, 10, 0)


def test_pattern_is_recorded_in_checkpoint_export_and_netspec(tmp_path, monkeypatch):
    from cosparse.sw import commands, inputs, netspec
    parser = tr.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", "d", "--out", "o", "--pattern", "conv2=nm:1:8"])
    assert tr.config_from_args(args).pattern == "conv2=nm:1:8"  # the default net's n2 = 8
    args = parser.parse_args(["--data", "d", "--out", "o", "--pattern", "nm:1:8"])
    with pytest.raises(ValueError, match="layer 'conv1': pattern nm:1:8 needs n"):
        tr.config_from_args(args)
    g = torch.Generator().manual_seed(3)
    X = torch.randint(0, 128, (48, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (48,), generator=g)
    tr.train(SMALL.replace(pattern="conv2=block:4,fc1=nm:1:8"), out_dir=tmp_path / "run",
             epochs=1, batch_size=16, data={"train": (X, y), "validation": (X[:16], y[:16])},
             progress=False, threads=1, mask=MaskSettings("gmp", every=1))
    ckpt = tr.read_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["config"]["pattern"] == "conv2=block:4,fc1=nm:1:8"
    monkeypatch.setattr(inputs, "from_dataset", lambda *a, **k: inputs.Inputs(
        X.numpy(), y.numpy(), [str(i) for i in range(len(y))]))
    sub = argparse.ArgumentParser().add_subparsers()
    commands.register_export(sub)
    args = sub.choices["export"].parse_args(["--checkpoint", str(tmp_path / "run" / "best.pt"),
                                             "--data", "unused", "--out", str(tmp_path / "spec")])
    assert args.func(args) == 0
    assert netspec.load_metadata(tmp_path / "spec")["pattern"] == "conv2=block:4,fc1=nm:1:8"
    spec = netspec.load(tmp_path / "spec")
    model = tr.load_checkpoint(tmp_path / "run" / "best.pt")
    assert [l.pattern for l in spec.packed_layers] == ["random", "block:4", "nm:1:8", "random"]
    for (_, layer), packed in zip(learnable_layers(model), spec.packed_layers):
        np.testing.assert_array_equal(packed.kernel_ids, _ids(layer))  # packed exactly
        assert (packed.weights[packed.kernel_ids == EMPTY_SLOT] == 0).all()


def test_netspec_states_and_checks_the_pattern(tmp_path):
    spec = random_netspec(5, pattern="block:2")
    assert {l.pattern for l in spec.packed_layers if l.n > 1} == {"block:2"}
    save(spec, tmp_path / "a")
    loaded = load(tmp_path / "a")
    assert [l.pattern for l in loaded.packed_layers] == [l.pattern for l in spec.packed_layers]
    # an unstructured NetSpec is written as before (no pattern field) and reads back random
    plain = random_netspec(5)
    save(plain, tmp_path / "b")
    doc = json.loads((tmp_path / "b" / "netspec.json").read_text())
    assert all("pattern" not in layer for layer in doc["layers"])
    assert all(l.pattern == "random" for l in load(tmp_path / "b").packed_layers)
    # kernel ids that break the stated pattern: the layer and the first bad block are named
    doc = json.loads((tmp_path / "a" / "netspec.json").read_text())
    layer = next(l for l in spec.packed_layers if l.n > 1 and l.kind == "linear")
    entry = next(d for d in doc["layers"] if d["name"] == layer.name)
    entry["pattern"] = "block:4"
    (tmp_path / "a" / "netspec.json").write_text(json.dumps(doc))
    with pytest.raises(NetSpecError, match=rf"layer '{layer.name}' \(linear\): kernel_ids break "
                                           r"pattern block:4: group \d+, block \d+ \(fan-in "
                                           r"slots \d+, \d+, \d+, \d+\) holds kernel ids"):
        load(tmp_path / "a")
    for bad, message in (("block:x", "is not understood"), ("nm:1:3", r"n \* N == M"),
                         ("Block:2", "is not understood"), (4, "must be a non-empty string")):
        entry["pattern"] = bad
        (tmp_path / "a" / "netspec.json").write_text(json.dumps(doc))
        with pytest.raises(NetSpecError, match=message):
            load(tmp_path / "a")


def test_nm_netspec_violation_is_named():
    spec = random_netspec(7, pattern="nm:1")
    layer = next(l for l in spec.packed_layers if l.n > 1)
    assert layer.pattern == f"nm:1:{layer.n}"
    ids = layer.kernel_ids.copy()
    used = np.flatnonzero(ids[0, :layer.n] != EMPTY_SLOT)
    ids[0, used] = ids[0, used[0]]  # one kernel twice in the first run
    with pytest.raises(NetSpecError, match=rf"layer '{layer.name}'.*group 0, run 0 .*more than "
                                           r"N = 1"):
        dataclasses.replace(layer, kernel_ids=ids).validate()
