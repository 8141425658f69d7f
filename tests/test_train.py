"""Tests of training, checkpoints and the train command, on tiny random data."""
import json

import pytest
import torch

from cosparse.sw import train as tr
from cosparse.sw.model import GSCNet, NetConfig

# A small network so each epoch takes a fraction of a second.
SMALL = NetConfig(conv1_channels=16, conv2_channels=16, hidden=64, n1=4, n2=4, n3=8, n4=2)


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, 128, (n, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (n,), generator=g)
    return {"train": (X, y), "validation": (X[:16], y[:16])}


def _train(out_dir, epochs, **kw):
    return tr.train(SMALL, out_dir=out_dir, epochs=epochs, batch_size=16, data=_data(),
                    progress=False, threads=1, **kw)


def test_two_epochs_write_metrics_and_checkpoints(tmp_path):
    final = _train(tmp_path, 2)
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert set(lines[0]) >= {"train_loss", "train_acc", "val_acc", "lr", "seconds"}
    assert lines[1]["lr"] == pytest.approx(0.02 * 0.9)
    assert final == lines[-1]
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()
    ckpt = tr.read_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["format"] == "cosparse-checkpoint"
    assert ckpt["version"] == 1 and NetConfig.from_dict(ckpt["config"]) == SMALL


def test_resume_continues_exactly(tmp_path):
    _train(tmp_path / "straight", 3)
    _train(tmp_path / "split", 2)
    _train(tmp_path / "split", 3, resume=True)
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3]
    a = tr.read_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    b = tr.read_checkpoint(tmp_path / "split" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metrics_restart_and_resume_drop_stale_lines(tmp_path):
    _train(tmp_path, 2)
    _train(tmp_path, 1)  # a fresh run in the same folder starts a new file
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1]
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # stopped before last.pt was written
        fh.write(json.dumps({"epoch": 2}) + "\n")
    _train(tmp_path, 2, resume=True)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2] and "val_acc" in lines[1]


def test_resume_without_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt does not exist"):
        _train(tmp_path, 1, resume=True)


def test_resume_rejects_changed_arguments(tmp_path):
    _train(tmp_path, 1)
    with pytest.raises(ValueError, match="lr=0.5"):
        _train(tmp_path, 2, resume=True, lr=0.5)


def test_load_checkpoint_round_trips_outputs(tmp_path):
    _train(tmp_path, 1)
    model = tr.load_checkpoint(tmp_path / "best.pt")
    assert not model.training
    ckpt = tr.read_checkpoint(tmp_path / "best.pt")
    again = GSCNet(SMALL)
    again.load_state_dict(ckpt["state_dict"])
    x = torch.rand(5, 1, 32, 32)
    assert torch.equal(model(x), again.eval()(x))
    X, y = _data()["validation"]
    assert tr.evaluate(model, X, y) == ckpt["metrics"]["val_acc"]


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tr.load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a cosparse checkpoint"):
        tr.load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ValueError, match="format 'something-else'"):
        tr.load_checkpoint(other)
    torch.save({"format": "cosparse-checkpoint", "version": 99}, other)
    with pytest.raises(ValueError, match="version 99"):
        tr.load_checkpoint(other)


def test_default_checkpoint_is_small(tmp_path):
    model = GSCNet()
    tr._save(tr._checkpoint(model, {}), tmp_path / "m.pt")
    assert (tmp_path / "m.pt").stat().st_size < 1.5e6


def test_time_shift_zero_fills_and_keeps_range():
    q = torch.arange(1, 9, dtype=torch.int8).view(1, 1, 1, 8).repeat(20, 1, 2, 1)
    out = tr.time_shift(q, 3, torch.Generator().manual_seed(0))
    assert out.dtype == torch.int8 and out.min() >= 0 and out.max() <= 8
    for row in out[:, 0, 0]:
        nz = row[row != 0]
        # A contiguous run of the original frames, in order.
        assert torch.equal(nz, torch.arange(int(nz[0]), int(nz[0]) + nz.numel(), dtype=torch.int8))


def test_evaluate_and_argmax_ties():
    model = GSCNet(SMALL).eval()
    X, y = _data()["train"]
    preds = tr.predict(model, X)
    assert preds.shape == y.shape
    assert tr.evaluate(model, X, preds) == 1.0
    assert tr.evaluate(model, tr.to_input(X), preds) == 1.0


def test_cli_builds_config_and_trains(tmp_path, monkeypatch):
    import argparse
    seen = {}
    monkeypatch.setattr(tr, "train", lambda config, *a, **kw: seen.update(config=config, kw=kw))
    sub = argparse.ArgumentParser().add_subparsers()
    parser = tr.register_cli(sub)
    args = parser.parse_args(["--data", "d", "--out", "o", "--dense", "--n3", "4",
                              "--epochs", "2", "--resume"])
    assert args.func(args) == 0
    assert seen["config"] == NetConfig.dense_baseline(n3=4)
    assert seen["kw"]["epochs"] == 2 and seen["kw"]["resume"]


def test_train_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one of data_root and data"):
        tr.train(SMALL, out_dir=tmp_path)
    with pytest.raises(ValueError, match="labels have shape"):
        tr.train(SMALL, out_dir=tmp_path, data={"train": (torch.zeros(4, 1, 32, 32, dtype=torch.int8),
                                                          torch.zeros(3)),
                                                "validation": _data()["validation"]})


def test_cosine_schedule_anneals_to_zero_and_fixes_its_length(tmp_path):
    final = _train(tmp_path / "straight", 4, lr_schedule="cosine", lr=0.1)
    lines = [json.loads(s) for s in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    import math
    assert [m["lr"] for m in lines] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    _train(tmp_path / "half", 2, lr_schedule="cosine", lr=0.1)
    with pytest.raises(ValueError, match="epochs=4 \\(was 2\\)"):  # the schedule's length
        _train(tmp_path / "half", 4, lr_schedule="cosine", lr=0.1, resume=True)
    assert final["epoch"] == 4


def test_resume_rejects_a_changed_schedule(tmp_path):
    _train(tmp_path, 1)
    with pytest.raises(ValueError, match="lr_schedule='cosine' \\(was 'step'\\)"):
        _train(tmp_path, 2, resume=True, lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_schedule must be"):
        _train(tmp_path / "x", 1, lr_schedule="linear")


def test_qat_fine_tunes_through_the_int8_forward_and_the_export_follows_it(tmp_path):
    import numpy as np

    from cosparse.sw import golden
    from cosparse.sw.export import export_model
    from cosparse.sw.export.export import quantise_model
    from cosparse.sw.export.fake_quant import predict
    _train(tmp_path / "float", 2)
    start = tr.read_checkpoint(tmp_path / "float" / "best.pt")
    final = _train(tmp_path / "qat", 2, qat_from=tmp_path / "float" / "best.pt", calibration=32,
                   lr=0.005)
    ckpt = tr.read_checkpoint(tmp_path / "qat" / "best.pt")
    qat = ckpt["qat"]
    # Scales calibrated once on the first 32 training clips, as the exporter would, then frozen.
    float_model = tr.load_checkpoint(tmp_path / "float" / "best.pt")
    clips = _data()["train"][0][:32].numpy()
    assert qat["output_scales"] == [q.output_scale for q in quantise_model(float_model, clips)[:-1]]
    assert qat["calibration_inputs"] == 32 and 0 <= qat["start_val_acc"] <= 1
    assert final["epoch"] == 2
    # Batch norm statistics and k-WTA duty cycles are frozen; the weights moved.
    state = ckpt["state_dict"]
    assert torch.equal(state["bn1.running_mean"], start["state_dict"]["bn1.running_mean"])
    assert torch.equal(state["kwta3.duty_cycle"], start["state_dict"]["kwta3.duty_cycle"])
    assert not torch.equal(state["fc1.packed"], start["state_dict"]["fc1.packed"])
    # Validation accuracy is the int8-rounded forward's, and the NetSpec exported with the
    # frozen scales computes that forward.
    model = tr.load_checkpoint(tmp_path / "qat" / "best.pt")
    X, y = _data()["validation"]
    preds = predict(model, X.numpy(), qat["output_scales"])
    assert float((torch.as_tensor(preds) == y).float().mean()) == ckpt["metrics"]["val_acc"]
    spec, quantised = export_model(model, None, output_scales=qat["output_scales"])
    assert [q.output_scale for q in quantised[:-1]] == qat["output_scales"]
    test = np.random.default_rng(5).integers(0, 128, (100, 1, 32, 32)).astype(np.int8)
    assert (predict(model, test, qat["output_scales"]) == golden.run(spec, test).predictions).mean() >= 0.99


def test_qat_resumes_exactly_and_refuses_a_qat_start(tmp_path):
    _train(tmp_path / "float", 1)
    start = tmp_path / "float" / "best.pt"
    _train(tmp_path / "straight", 3, qat_from=start, calibration=16, lr=0.005)
    _train(tmp_path / "split", 2, qat_from=start, calibration=16, lr=0.005)
    _train(tmp_path / "split", 3, qat_from=start, calibration=16, lr=0.005, resume=True)
    a = tr.read_checkpoint(tmp_path / "straight" / "last.pt")
    b = tr.read_checkpoint(tmp_path / "split" / "last.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["qat"] == b["qat"]
    with pytest.raises(ValueError, match="qat="):  # resuming a QAT run as a plain one
        _train(tmp_path / "split", 4, lr=0.005, resume=True)
    with pytest.raises(ValueError, match="already quantisation-aware"):
        _train(tmp_path / "again", 1, qat_from=tmp_path / "split" / "best.pt")
    with pytest.raises(ValueError, match="differs from"):
        tr.train(NetConfig(), out_dir=tmp_path / "x", epochs=1, data=_data(), progress=False,
                 threads=1, qat_from=start)


def test_export_and_evaluate_commands_with_a_qat_checkpoint(tmp_path, monkeypatch):
    import argparse

    import numpy as np

    from cosparse.sw import commands, inputs, netspec
    _train(tmp_path / "float", 1)
    _train(tmp_path / "qat", 1, qat_from=tmp_path / "float" / "best.pt", calibration=16, lr=0.005)
    ckpt = tmp_path / "qat" / "best.pt"
    sub = argparse.ArgumentParser().add_subparsers()
    commands.register_export(sub)
    args = sub.choices["export"].parse_args(["--checkpoint", str(ckpt), "--data", "unused",
                                             "--out", str(tmp_path / "spec")])
    assert args.func(args) == 0  # no data set read: the checkpoint's frozen scales are used
    meta = netspec.load_metadata(tmp_path / "spec")
    scales = tr.read_checkpoint(ckpt)["qat"]["output_scales"]
    assert meta["qat"]["output_scales"] == scales
    assert [meta["scales"][name]["output"] for name in ("conv1", "conv2", "fc1")] == scales
    spec = netspec.load(tmp_path / "spec")
    # The precision it was fine-tuned at (the default), unless the command names another.
    assert meta["precision"] == tr.read_checkpoint(ckpt)["qat"]["precision"]
    assert spec.layer("conv1").weight_bits == 16 and spec.layer("kwta1").frac_bits == 4
    args = sub.choices["export"].parse_args(["--checkpoint", str(ckpt), "--data", "unused",
                                             "--out", str(tmp_path / "int8"), "--weight-bits",
                                             "none", "--frac-bits", "conv2=2"])
    assert args.func(args) == 0
    int8 = netspec.load(tmp_path / "int8")
    assert [l.weight_bits for l in int8.packed_layers] == [8, 8, 8, 8]
    assert [l.frac_bits for l in int8.layers if l.kind == "kwta"] == [0, 2, 0]
    X, y = _data()["validation"]
    data = inputs.Inputs(X.numpy(), y.numpy(), [str(i) for i in range(len(y))])
    report = commands.evaluate(spec, ckpt, data, output_scales=scales)
    assert report["trained_forward"] == "int8_rounded"
    assert report["golden_agrees_with_trained_forward"] == report[
        "golden_agrees_with_float_int8_rounded"]
    assert "golden_agrees_with_float_sparse" in report  # the plain float forward, still reported
    plain = commands.evaluate(spec, tmp_path / "float" / "best.pt", data, output_scales=scales)
    assert plain["trained_forward"] == "float"
    assert plain["golden_agrees_with_trained_forward"] == plain["golden_agrees_with_float_sparse"]
    assert np.isclose(report["float_int8_rounded_accuracy"], tr.read_checkpoint(ckpt)["metrics"]["val_acc"])


def test_cli_qat_takes_the_checkpoints_config(tmp_path, monkeypatch):
    import argparse
    seen = {}
    monkeypatch.setattr(tr, "train", lambda config, *a, **kw: seen.update(config=config, kw=kw))
    parser = tr.register_cli(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(["--data", "d", "--out", "o", "--qat-from", "c.pt", "--lr", "0.002",
                              "--lr-schedule", "cosine", "--calibration", "100"])
    assert args.func(args) == 0
    assert seen["config"] is None and seen["kw"]["qat_from"] == "c.pt"
    assert seen["kw"]["calibration"] == 100 and seen["kw"]["lr_schedule"] == "cosine"


def test_init_from_fine_tunes_from_the_weights_and_changes_only_training_fields(tmp_path):
    _train(tmp_path / "base", 1)
    base = tmp_path / "base" / "last.pt"
    noisy = SMALL.replace(kwta_noise=0.3)
    tr.train(noisy, out_dir=tmp_path / "ft", epochs=1, batch_size=16, data=_data(),
             progress=False, threads=1, lr=0.0, momentum=0.0, init_from=base)
    start = tr.read_checkpoint(base)["state_dict"]
    ckpt = tr.read_checkpoint(tmp_path / "ft" / "last.pt")
    # lr 0: the weights are the starting checkpoint's (BN statistics and duty cycles move on).
    assert torch.equal(ckpt["state_dict"]["conv1.packed"], start["conv1.packed"])
    assert NetConfig.from_dict(ckpt["config"]) == noisy
    assert ckpt["train_args"]["init_from"] == str(base)
    with pytest.raises(ValueError, match=r"different network \(n3=8, asked 4\); only "):
        tr.train(SMALL.replace(n3=4), out_dir=tmp_path / "bad", epochs=1, data=_data(),
                 progress=False, init_from=base)
    with pytest.raises(ValueError, match="at most one of qat_from and init_from"):
        tr.train(None, out_dir=tmp_path / "bad", epochs=1, data=_data(), progress=False,
                 init_from=base, qat_from=base)
