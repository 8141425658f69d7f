"""Engine-cue augmentation (cosparse.sw.augment) and its training flags, on tiny data."""
import json

import pytest
import torch

from cosparse.sw import augment
from cosparse.sw import train as tr
from cosparse.sw.data.gsc import SILENCE
from cosparse.sw.features import audio_to_features
from cosparse.sw.model import NetConfig

SMALL = NetConfig(conv1_channels=16, conv2_channels=16, hidden=64, n1=4, n2=4, n3=8, n4=2)
TRANSFORMS = (augment.band_eq, augment.warp, augment.spec_mask)


def _features(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 128, (n, 1, 32, 32), generator=g).to(torch.int8)
    q[:, :, :, :3] = 0  # a -80 dB floor at the start, as leading silence gives
    return q


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_transforms_keep_shape_range_and_follow_the_seed(transform):
    q = _features()
    a = transform(q, torch.Generator().manual_seed(7), 1.0)
    b = transform(q, torch.Generator().manual_seed(7), 1.0)
    c = transform(q, torch.Generator().manual_seed(8), 1.0)
    assert a.shape == q.shape and a.dtype == q.dtype
    assert int(a.min()) >= 0 and int(a.max()) <= 127
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, q)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_probability_zero_changes_nothing(transform):
    q = _features()
    assert torch.equal(transform(q, torch.Generator().manual_seed(1), 0.0), q)


@pytest.mark.parametrize("transform", (augment.band_eq, augment.warp))
def test_level_changes_keep_the_maximum_at_0_db(transform):
    out = transform(_features(), torch.Generator().manual_seed(3), 1.0)
    assert (out.amax(dim=(1, 2, 3)) == 127).all()  # features are relative to the loudest cell


def test_band_limit_cuts_the_top_bands():
    q = torch.full((256, 1, 32, 32), 100, dtype=torch.int8)
    out = augment.band_eq(q, torch.Generator().manual_seed(0), 1.0, max_db=0.0)
    top = out[:, 0, -1, :].float().mean(dim=1)
    limited = top < 85  # at least 30 dB (47.6 codes) below the rest, now at 127
    assert 0.3 < limited.float().mean() < 0.7  # half the clips are band-limited
    assert (out[limited][:, 0, 0, :] == 127).all()  # the low bands keep the maximum


def test_masks_set_whole_bands_and_frames_to_the_floor():
    q = torch.full((64, 1, 32, 32), 90, dtype=torch.int8)
    out = augment.spec_mask(q, torch.Generator().manual_seed(0), 1.0, masks=1, width=4)
    zero = out == 0
    rows = zero[:, 0].all(dim=2).sum(dim=1)  # whole mel bands masked
    cols = zero[:, 0].all(dim=1).sum(dim=1)  # whole frames masked
    assert (rows <= 4).all() and (cols <= 4).all() and (rows + cols).sum() > 0
    assert ((out == 90) | zero).all()


def test_warp_moves_energy_along_both_axes():
    q = torch.zeros((1, 1, 32, 32), dtype=torch.int8)
    q[0, 0, 10, 10:20] = 127
    outs = [augment.warp(q, torch.Generator().manual_seed(s), 1.0) for s in range(20)]
    rows = {int(o[0, 0].float().sum(dim=1).argmax()) for o in outs}
    spans = {int((o[0, 0].amax(dim=0) > 60).sum()) for o in outs}
    assert len(rows) > 1 and len(spans) > 1


def test_silence_bank_and_add_silence():
    bank = augment.silence_bank(0, count=6)
    assert bank.shape == (6, 1, 32, 32) and bank.dtype == torch.int8
    import numpy as np
    assert torch.equal(bank[0], torch.from_numpy(audio_to_features(np.zeros(16000, np.float32))))
    q, y = _features(), torch.zeros(32, dtype=torch.long)
    q2, y2 = augment.add_silence(q, y, bank, SILENCE, torch.Generator().manual_seed(0), 0.5)
    replaced = y2 == SILENCE
    assert 0 < int(replaced.sum()) < 32
    assert all(any(torch.equal(q2[i], b) for b in bank) for i in torch.nonzero(replaced).flatten())
    assert torch.equal(q2[~replaced], q[~replaced])


def _data(n=48):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 128, (n, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (n,), generator=g)
    return {"train": (X, y), "validation": (X[:16], y[:16])}


def test_training_flags_are_recorded_deterministic_and_fixed_on_resume(tmp_path):
    kw = dict(eq_prob=0.5, warp_prob=0.5, mask_prob=0.5, silence_extra=0.1)

    def run(out, epochs, **more):
        return tr.train(SMALL, out_dir=out, epochs=epochs, batch_size=16, data=_data(),
                        progress=False, threads=1, **{**kw, **more})

    run(tmp_path / "a", 1)
    run(tmp_path / "b", 1)
    a = tr.read_checkpoint(tmp_path / "a" / "last.pt")
    b = tr.read_checkpoint(tmp_path / "b" / "last.pt")
    assert {k: a["train_args"][k] for k in kw} == kw
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    plain = tr.train(SMALL, out_dir=tmp_path / "c", epochs=1, batch_size=16, data=_data(),
                     progress=False, threads=1)
    c = json.loads((tmp_path / "c" / "metrics.jsonl").read_text())
    assert c["train_loss"] != json.loads((tmp_path / "a" / "metrics.jsonl").read_text())[
        "train_loss"]
    assert plain["epoch"] == 1
    with pytest.raises(ValueError, match="warp_prob"):
        run(tmp_path / "a", 2, resume=True, warp_prob=0.25)
    with pytest.raises(ValueError, match=r"eq_prob must be a probability"):
        run(tmp_path / "d", 1, eq_prob=1.5)
