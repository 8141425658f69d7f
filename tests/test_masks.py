"""Learned complementary masks: every method keeps each group a partition of the fan-in."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cosparse
from cosparse.sw import train as tr
from cosparse.sw.model import CompSparseLinear, GSCNet, NetConfig
from cosparse.sw.model.complementary import EMPTY, _CompSparseBase, group_sizes
from cosparse.sw.model.masks import (CandidatePruning, DynamicSparse, MaskSettings, _padded_view,
                                     drop_fraction, gmp_alive, learnable_layers, make_scheduler)

sys.path.insert(0, str(Path(__file__).parent))
from _torch_nets import check_golden_follows_pytorch, random_sequential  # noqa: E402

LEARNED = ("magnitude", "gmp", "set", "rigl")
SMALL = NetConfig(conv1_channels=16, conv2_channels=16, hidden=64, n1=4, n2=4, n3=8, n4=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _check_partition(layer):
    """slot_kernel in [EMPTY, n_g) per group, EMPTY slots hold 0, the scatter follows it."""
    sk = layer.slot_kernel.long()
    upper = torch.tensor(group_sizes(layer.out_features, layer.n)).unsqueeze(1)
    assert ((sk >= EMPTY) & (sk < upper)).all()
    assert (layer.packed.detach()[sk == EMPTY] == 0).all()
    dense = layer.packed_weight_2d().detach()
    # each slot lands in at most one kernel row of its group, with its packed value
    rows = torch.arange(layer.groups).unsqueeze(1) * layer.n + sk
    used = sk != EMPTY
    g, f = used.nonzero(as_tuple=True)
    assert torch.equal(dense[rows[g, f], f], layer.packed.detach()[g, f])
    assert int((dense != 0).sum()) <= int(used.sum())


def _run(model, method, steps=12, every=2, seed=0, check=None, **kw):
    """Drive a scheduler through ``steps`` SGD steps on random data, checking every step."""
    torch.manual_seed(seed)
    shape = (2, 1, 32, 32) if isinstance(model, GSCNet) else None
    masks = make_scheduler(MaskSettings(method, every=every, **kw), model, steps, seed)
    params = list(model.parameters()) + masks.parameters()
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    model.train()
    for _ in range(steps):
        x = torch.rand(8, *shape[1:]) if shape else torch.rand(8, model[0].in_features)
        masks.before_forward()
        loss = model(x).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        masks.after_step(optimizer)
        for _, layer in learnable_layers(model):
            _check_partition(layer)
        if check is not None:
            check(masks)
    masks.finish()
    return masks


@pytest.mark.parametrize("method", LEARNED)
def test_every_method_keeps_groups_a_partition_and_empty_slots_zero(method):
    model = GSCNet(SMALL)
    before = {n: l.slot_kernel.clone() for n, l in learnable_layers(model)}
    masks = _run(model, method)
    assert masks.deployable
    assert all(l.weight_source is None for _, l in learnable_layers(model))
    moved = [not torch.equal(before[n], l.slot_kernel) for n, l in learnable_layers(model)]
    assert any(moved)  # the mask was learned, not kept


def test_empty_slots_stay_zero_through_momentum_and_weight_decay():
    """Slots emptied by hand hold 0 through momentum and weight decay; SET keeps their count."""
    layer = CompSparseLinear(12, 6, 3, seed=1)
    sk = layer.slot_kernel.clone()
    sk[:, :4] = EMPTY
    layer.set_assignment(sk, layer.packed.detach())
    model = nn.Sequential(layer)
    active = int((layer.slot_kernel != EMPTY).sum())
    _run(model, "set", steps=10, every=3, check=lambda m: _check_partition(layer))
    assert int((layer.slot_kernel != EMPTY).sum()) == active


def test_gmp_schedule_is_monotone_and_ends_at_one_candidate_per_slot():
    counts = [gmp_alive(100, 400, t / 50) for t in range(51)]
    assert counts[0] == 400 and counts[-1] == 100
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert gmp_alive(100, 400, 2.0) == 100 and gmp_alive(100, 400, -1.0) == 400
    fractions = [drop_fraction(0.3, t / 10) for t in range(11)]
    assert fractions[0] == pytest.approx(0.3) and fractions[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(fractions, fractions[1:]))

    model = GSCNet(SMALL)
    seen = []

    def alive_follows_schedule(masks):
        if masks.committed:
            return
        for (_, layer), alive in zip(masks.layers, masks.alive):
            target = gmp_alive(layer.groups * layer.fan_in, layer.out_features * layer.fan_in,
                               (masks.step // 2 * 2) / masks.end_step)
            assert int(alive.sum()) == target
            # no slot ever loses its last candidate
            assert _padded_view(layer, alive, False).any(1).all()
        seen.append(int(masks.alive[0].sum()))

    masks = _run(model, "gmp", steps=16, every=2, end=0.75, check=alive_follows_schedule)
    assert seen == sorted(seen, reverse=True) and len(set(seen)) > 2
    assert masks.committed and masks.end_step == 12
    for (_, layer), alive in zip(masks.layers, masks.alive):  # one candidate per slot at the end
        assert int(alive.sum()) == layer.groups * layer.fan_in
        assert (layer.slot_kernel != EMPTY).all()


def test_magnitude_keeps_each_slots_largest_candidate():
    layer = CompSparseLinear(5, 7, 3, seed=0)  # groups of 3, 3 and 1 kernels
    model = nn.Sequential(layer)
    masks = CandidatePruning(model, MaskSettings("magnitude"), 10, seed=0)
    cand = masks.candidates[0].detach().clone()
    masks.commit()
    for g, n_g in enumerate(group_sizes(7, 3)):
        rows = cand[g * 3:g * 3 + n_g]
        best = rows.abs().argmax(0)
        assert torch.equal(layer.slot_kernel[g].long(), best)
        assert torch.equal(layer.packed.detach()[g], rows.gather(0, best[None])[0])


@pytest.mark.parametrize("method", ("set", "rigl"))
def test_dynamic_sparse_training_keeps_the_number_of_active_slots(method):
    model = GSCNet(SMALL)
    counts = {n: int((l.slot_kernel != EMPTY).sum()) for n, l in learnable_layers(model)}
    _run(model, method, steps=10, every=2, drop=0.5, check=lambda masks: [
        _check_count(l, counts[n]) for n, l in learnable_layers(model)])


def _check_count(layer, count):
    assert int((layer.slot_kernel != EMPTY).sum()) == count


def test_rigl_regrows_where_the_dense_gradient_is_largest():
    """Constructed case: two empty slots and one dropped; the gradient names the winner."""
    layer = CompSparseLinear(6, 4, 2, bias=False, slot_kernel=torch.tensor(
        [[0, 1, 0, 1, EMPTY, EMPTY], [0, 1, 0, 1, 0, 1]]))
    with torch.no_grad():
        layer.packed.copy_(torch.tensor([[1.0, -2, 3, -4, 0, 0], [0.01, 5, -6, 7, 8, -9]]))
    model = nn.Sequential(layer)
    masks = DynamicSparse(model, MaskSettings("rigl", every=1), 10, seed=0)
    masks.before_forward()
    # dL/dW[o, f] = c[o] * sum(x[:, f]): largest at output 1 = group 0's kernel 1, f = 1
    # (occupied), then f = 5 (empty): (slot (0, 5), kernel 1) must win.
    x = torch.tensor([[0.1, 5.0, 0.1, 0.1, 0.2, 1.0]])
    c = torch.tensor([1.0, 3.0, 2.0, 0.5])
    (model(x) * c).sum().backward()
    masks.update(0.1)  # 10 active slots: drop 1 (the smallest, slot (1, 0)), grow 1
    expected = torch.tensor([[0, 1, 0, 1, EMPTY, 1], [EMPTY, 1, 0, 1, 0, 1]], dtype=torch.int16)
    assert torch.equal(layer.slot_kernel, expected)
    assert layer.packed[0, 5] == 0 and layer.packed[1, 0] == 0  # grown at 0, dropped to 0
    assert layer.packed[1, 5] == -9


@pytest.mark.parametrize("method", ("gmp", "rigl"))
def test_checkpoints_keep_the_mask_and_resume_exactly(tmp_path, monkeypatch, method):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 128, (48, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (48,), generator=g)
    data = {"train": (X, y), "validation": (X[:16], y[:16])}
    mask = MaskSettings(method, end=0.8, every=2)

    def run(out, epochs, **kw):
        return tr.train(SMALL, out_dir=out, epochs=epochs, batch_size=16, data=data,
                        progress=False, threads=1, mask=mask, **kw)

    run(tmp_path / "straight", 3)
    real_epoch = tr._train_epoch

    def stop_at_epoch_3(*args, **kw):
        if args[8] == 3:  # gmp: stopped inside the pruning phase
            raise KeyboardInterrupt
        return real_epoch(*args, **kw)

    monkeypatch.setattr(tr, "_train_epoch", stop_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "split", 3)
    monkeypatch.setattr(tr, "_train_epoch", real_epoch)
    assert tr.read_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 2
    run(tmp_path / "split", 3, resume=True)
    a = tr.read_checkpoint(tmp_path / "straight" / "last.pt")
    b = tr.read_checkpoint(tmp_path / "split" / "last.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["mask"] == mask.as_dict() and a["train_args"]["mask"] == mask.as_dict()
    model = tr.load_checkpoint(tmp_path / "straight" / "last.pt")
    static = GSCNet(SMALL)
    for name, layer in learnable_layers(model):
        assert torch.equal(layer.slot_kernel, a["state_dict"][f"{name}.slot_kernel"])
        _check_partition(layer)
    assert any(not torch.equal(l.slot_kernel, s.slot_kernel) for (_, l), (_, s) in
               zip(learnable_layers(model), learnable_layers(static)))
    best = tr.read_checkpoint(tmp_path / "straight" / "best.pt")
    assert best["mask"] == mask.as_dict()
    with pytest.raises(ValueError, match="mask="):
        tr.train(SMALL, out_dir=tmp_path / "split", epochs=3, batch_size=16, data=data,
                 progress=False, threads=1, resume=True, mask="set")


def test_pruning_saves_best_only_once_the_mask_is_committed(tmp_path):
    g = torch.Generator().manual_seed(1)
    X = torch.randint(0, 128, (48, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (48,), generator=g)
    data = {"train": (X, y), "validation": (X[:16], y[:16])}
    tr.train(SMALL, out_dir=tmp_path, epochs=1, batch_size=16, data=data, progress=False,
             threads=1, mask=MaskSettings("magnitude", end=1.0))
    assert (tmp_path / "best.pt").is_file()  # committed at the last step of the run
    tr.train(SMALL, out_dir=tmp_path / "b", epochs=2, batch_size=16, data=data, progress=False,
             threads=1, mask=MaskSettings("magnitude", end=0.9))
    assert tr.read_checkpoint(tmp_path / "b" / "best.pt")["metrics"]["epoch"] == 2


def test_bad_mask_settings_are_named():
    with pytest.raises(ValueError, match="mask method must be one of"):
        MaskSettings("lottery")
    with pytest.raises(ValueError, match="mask end"):
        MaskSettings("gmp", end=0.0)
    with pytest.raises(ValueError, match="mask drop"):
        MaskSettings("set", drop=1.5)
    with pytest.raises(ValueError, match="mask every"):
        MaskSettings("rigl", every=0)
    assert MaskSettings("set").end == 0.75 and MaskSettings("gmp").end == 0.5
    assert MaskSettings().as_dict() == {"method": "static"}


@pytest.mark.parametrize("seed, method", [(s, m) for s, m in zip(range(8), LEARNED * 2)])
def test_learned_masks_export_exactly_and_golden_follows_pytorch(seed, method):
    """Random nets with a learned mask (and some slots emptied by hand) pack slot for slot."""
    from cosparse.sw.netspec import EMPTY_SLOT
    model, shape = random_sequential(seed)
    rng = np.random.default_rng(seed)
    steps = 8
    masks = make_scheduler(MaskSettings(method, every=2), model, steps, seed)
    optimizer = torch.optim.SGD(list(model.parameters()) + masks.parameters(), lr=0.05,
                                momentum=0.9)
    train_x = rng.integers(0, 128, (32, *shape)).astype(np.int8)
    xb = torch.from_numpy(train_x.astype(np.float32) / 127)
    labels = torch.randint(0, list(model.modules())[-1].out_features, (32,))
    model.train()
    for _ in range(steps):
        masks.before_forward()
        loss = nn.functional.cross_entropy(model(xb), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        masks.after_step(optimizer)
    masks.finish()
    for _, layer in learnable_layers(model):  # leave a few slots to no kernel
        sk = layer.slot_kernel.clone()
        sk.view(-1)[torch.randperm(sk.numel())[:max(1, sk.numel() // 10)]] = EMPTY
        layer.set_assignment(sk, layer.packed.detach())
    model.eval()
    calibration, scale = cosparse.quantise_inputs(train_x.astype(np.float64) / 127)
    spec = cosparse.export(model, calibration, input_scale=scale, name=f"masks{seed}")
    layers = [m for m in model.modules() if isinstance(m, _CompSparseBase)]
    for layer, packed in zip(layers, spec.packed_layers):
        ids = layer.slot_kernel.numpy()
        np.testing.assert_array_equal(packed.kernel_ids,
                                      np.where(ids < 0, EMPTY_SLOT, ids).astype(np.uint8))
        assert (packed.weights[ids < 0] == 0).all()
    x = rng.integers(0, 128, (100, *shape)).astype(np.int8)
    check_golden_follows_pytorch(model, spec, calibration, scale, x)


def test_static_is_the_default_and_qat_refuses_a_learned_mask(tmp_path):
    import argparse
    parser = tr.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", "d", "--out", "o"])
    assert args.mask == "static"
    args = parser.parse_args(["--data", "d", "--out", "o", "--mask", "rigl", "--mask-every", "7"])
    assert (args.mask, args.mask_every, args.mask_drop, args.mask_end) == ("rigl", 7, 0.3, None)
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 128, (32, 1, 32, 32), generator=g).to(torch.int8)
    data = {"train": (X, torch.zeros(32, dtype=torch.long)), "validation": (X[:8],
                                                                           torch.zeros(8).long())}
    with pytest.raises(ValueError, match="quantisation-aware"):
        tr.train(SMALL, out_dir=tmp_path, epochs=1, data=data, progress=False,
                 qat_from=tmp_path / "x.pt", mask="gmp")


def test_export_command_carries_the_mask_into_the_netspec_metadata(tmp_path, monkeypatch):
    import argparse

    from cosparse.sw import commands, inputs, netspec
    g = torch.Generator().manual_seed(2)
    X = torch.randint(0, 128, (48, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (48,), generator=g)
    mask = MaskSettings("set", every=2)
    tr.train(SMALL, out_dir=tmp_path / "run", epochs=1, batch_size=16,
             data={"train": (X, y), "validation": (X[:16], y[:16])}, progress=False, threads=1,
             mask=mask)
    monkeypatch.setattr(inputs, "from_dataset", lambda *a, **k: inputs.Inputs(
        X.numpy(), y.numpy(), [str(i) for i in range(len(y))]))
    sub = argparse.ArgumentParser().add_subparsers()
    commands.register_export(sub)
    args = sub.choices["export"].parse_args(["--checkpoint", str(tmp_path / "run" / "best.pt"),
                                             "--data", "unused", "--out", str(tmp_path / "spec")])
    assert args.func(args) == 0
    assert netspec.load_metadata(tmp_path / "spec")["mask"] == mask.as_dict()
    spec = netspec.load(tmp_path / "spec")
    model = tr.load_checkpoint(tmp_path / "run" / "best.pt")
    for (_, layer), packed in zip(learnable_layers(model), spec.packed_layers):
        np.testing.assert_array_equal(packed.kernel_ids, layer.slot_kernel.numpy().astype(np.uint8))
