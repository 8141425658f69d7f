"""The feature normalisation option (sw/features.py ``NORMALISATIONS``): "none" is today's
features bit for bit, "band-mean" cancels per-band gains, and the NetSpec carries the choice
to every command that computes features."""
import argparse

import numpy as np
import pytest
import soundfile as sf
import torch

from cosparse.sw import features as F
from cosparse.sw import assets, golden, inputs, netspec
from cosparse.sw.augment import silence_bank
from cosparse.sw.export import export_model
from cosparse.sw.model import GSCNet, NetConfig

SMALL = dict(conv1_channels=16, conv2_channels=16, hidden=64, n1=4, n2=4, n3=8, n4=2)


def _clip(seed):
    """1 s of noise plus a few tones: speech-like spread over the mel bands, and well inside
    the 80 dB floor, so a per-band gain of +-12 dB moves no cell onto it."""
    rng = np.random.default_rng(seed)
    t = np.arange(F.CLIP_SAMPLES) / F.SAMPLE_RATE
    audio = 0.01 * rng.standard_normal(F.CLIP_SAMPLES)
    for freq in rng.uniform(150, 6000, 4):
        phase = np.pi * (t - rng.uniform(0, 0.5)) / rng.uniform(0.2, 0.5)
        envelope = np.clip(np.sin(phase), 0, None)
        audio += 0.2 * envelope * np.sin(2 * np.pi * freq * t)
    return (audio / np.abs(audio).max() * 0.5).astype(np.float32)


def _todays_features(audio):
    """The features as sw/features.py computed them before the option existed."""
    import librosa
    power = librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=32, n_fft=2048,
                                           hop_length=512)
    if power.max() <= 1e-10:
        return np.full((1, 32, 32), 127, np.int8)
    db = librosa.power_to_db(power, ref=np.max, amin=1e-10, top_db=80.0).astype(np.float32)
    q = np.floor((db.astype(np.float64) + 80.0) * (127 / 80) + 0.5)
    return np.clip(q, 0, 127).astype(np.int8).reshape(1, 32, 32)


def test_none_is_todays_features_bit_for_bit():
    clips = [_clip(s) for s in range(3)] + [np.zeros(F.CLIP_SAMPLES, np.float32)]
    for audio in clips:
        today = _todays_features(audio)
        np.testing.assert_array_equal(F.audio_to_features(audio), today)
        np.testing.assert_array_equal(F.audio_to_features(audio, "none"), today)
    # the NetSpec description (and so every features cache key) is unchanged
    assert F.input_quant_spec("none") == F.input_quant_spec()
    assert "normalisation" not in F.input_quant_spec()
    assert F.normalisation_of(F.input_quant_spec()) == "none"
    assert F.normalisation_of({}) == "none"  # NetSpecs from before the option


@pytest.mark.parametrize("normalisation", ["band-mean", "band-floor"])
def test_band_normalisation_cancels_a_per_band_gain(normalisation):
    import librosa
    rng = np.random.default_rng(7)
    audio = _clip(11)
    power = librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=32, n_fft=2048,
                                           hop_length=512)
    gain_db = rng.uniform(-12, 12, (32, 1))  # an equaliser / tilt, one gain per mel band
    db = F.power_to_logmel(power)
    db_eq = F.power_to_logmel(power * 10 ** (gain_db / 10))
    assert db.min() > F.DB_FLOOR + 12 and db_eq.min() > F.DB_FLOOR  # nothing on the floor
    np.testing.assert_allclose(F.normalise(db_eq, normalisation), F.normalise(db, normalisation),
                               atol=1e-3)
    np.testing.assert_array_equal(F.quantise_features(db_eq, normalisation),
                                  F.quantise_features(db, normalisation))
    # ... which "none" does not: the gain moves whole bands
    moved = F.quantise_features(db_eq).astype(int) - F.quantise_features(db)
    assert np.abs(moved).max() >= 10
    # in dB, any gain per band (and the clip-maximum reference) cancels to rounding
    shift = rng.integers(-20, 20, (32, 1)).astype(np.float64)
    np.testing.assert_array_equal(F.quantise_features(db + shift - 3.0, normalisation),
                                  F.quantise_features(db, normalisation))


def test_band_mean_quantisation_range():
    db = np.zeros((32, 32))
    assert (F.quantise_features(db, "band-mean") == 48).all()  # the mean: -30 dB is 0
    db[:, 0] = 70.0  # 70 dB above a band mean of ~2.2 dB: clipped to 127
    db[:, 1] = -70.0
    q = F.quantise_features(db, "band-mean")[0]
    assert (q[:, 0] == 127).all() and (q[:, 1] == 0).all()
    # -30 dB below the band mean is exactly code 0, +50 dB exactly 127
    z = np.zeros((32, 32))
    z[:, 0], z[:, 1] = 40.0, -40.0  # the mean stays 0
    z[:, 2], z[:, 3] = 50.0, -50.0
    z[:, 4], z[:, 5] = 30.0, -30.0
    q = F.quantise_features(z, "band-mean")[0]
    assert (q[:, 2] == 127).all() and (q[:, 3] == 0).all() and (q[:, 5] == 0).all()
    spec = F.input_quant_spec("band-mean")
    assert spec["normalisation"] == "band-mean"
    assert (spec["db_floor"], spec["db_ceil"]) == (F.BAND_MEAN_FLOOR, F.BAND_MEAN_CEIL)
    assert spec["scale"] == F.SCALE == 127 / (spec["db_ceil"] - spec["db_floor"])
    assert (silence_bank(0, 2, normalisation="band-mean")[0] == 48).all()  # digital silence


def test_band_floor_quantisation_range():
    rows = np.tile(np.arange(32.0), (32, 1))  # frames 0..31 dB: the 10th percentile is 3.1 dB
    z = F.normalise(rows, "band-floor")
    np.testing.assert_allclose(z[:, 0], -3.1)
    q = F.quantise_features(rows, "band-floor")[0]
    np.testing.assert_array_equal(q[0], np.floor((np.arange(32.0) - 3.1 + 5) * F.SCALE + 0.5))
    assert (F.quantise_features(np.zeros((32, 32)), "band-floor") == 8).all()  # silence
    rows[:, 5] = 100.0  # 96.9 dB above the floor: clipped
    assert (F.quantise_features(rows, "band-floor")[0][:, 5] == 127).all()
    spec = F.input_quant_spec("band-floor")
    assert spec["normalisation"] == "band-floor"
    assert (spec["db_floor"], spec["db_ceil"]) == (-5.0, 75.0) == F.WINDOWS["band-floor"]


@pytest.mark.parametrize("call", [
    lambda: F.check_normalisation("cmn"),
    lambda: F.audio_to_features(_clip(0), "cmn"),
    lambda: F.input_quant_spec("cmn"),
    lambda: NetConfig(features="cmn"),
])
def test_unknown_normalisation_is_named(call):
    with pytest.raises(ValueError, match=r"unknown feature normalisation 'cmn'.*'band-mean'"):
        call()


def test_unknown_normalisation_in_a_netspec_is_named():
    with pytest.raises(ValueError, match=r"input.quant.normalisation is 'cmvn'.*export"):
        F.normalisation_of({"normalisation": "cmvn"})


def _band_mean_model(seed=0):
    """A small band-mean network, batch norms run on real band-mean features of synthetic
    clips; returns it and those features."""
    torch.manual_seed(seed)
    model = GSCNet(NetConfig(features="band-mean", **SMALL))
    x = np.stack([F.audio_to_features(_clip(100 + i), "band-mean") for i in range(48)])
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.from_numpy(F.dequantise_features(x)))
    return model.eval(), x


def test_export_records_band_mean_and_golden_follows_pytorch(tmp_path):
    from cosparse.sw.export.fake_quant import predict
    model, x = _band_mean_model()
    spec, quantised = export_model(model, x, tmp_path / "net")
    loaded = netspec.load(tmp_path / "net")
    assert F.normalisation_of(loaded.input.quant) == "band-mean"
    assert loaded.input.quant == F.input_quant_spec("band-mean")
    assert inputs.normalisation_for(loaded) == "band-mean"
    # golden integer model against PyTorch with the exporter's roundings, on band-mean features
    test = np.stack([F.audio_to_features(_clip(500 + i), "band-mean") for i in range(40)])
    scales = [q.output_scale for q in quantised[:-1]]
    assert (predict(model, test, scales) == golden.run(loaded, test).predictions).all()
    # a "none" network still writes the NetSpec it always did
    torch.manual_seed(0)
    plain, _ = export_model(GSCNet(NetConfig(**SMALL)).eval(), x)
    assert plain.input.quant == F.input_quant_spec() and inputs.normalisation_for(plain) == "none"


def test_commands_compute_the_netspecs_features(tmp_path):
    model, x = _band_mean_model()
    spec, _ = export_model(model, x)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"yes_{i}.wav")
        sf.write(paths[-1], _clip(i), 16000, subtype="FLOAT")
    args = argparse.Namespace(wav=[str(p) for p in paths], features=None, dataset=None,
                              convert=False, limit=None, split="testing")
    data = inputs.resolve(args, spec)
    expected = np.stack([F.wav_to_features(p, normalisation="band-mean") for p in paths])
    np.testing.assert_array_equal(data.x, expected)
    assert not np.array_equal(expected, np.stack([F.wav_to_features(p) for p in paths]))
    np.testing.assert_array_equal(inputs.resolve(args, None).x,
                                  np.stack([F.wav_to_features(p) for p in paths]))


def test_training_records_band_mean_and_refuses_none_augmentation(tmp_path):
    from cosparse.sw import train as tr
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 128, (32, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (32,), generator=g)
    data = {"train": (X, y), "validation": (X[:16], y[:16])}
    config = NetConfig(features="band-mean", **SMALL)
    tr.train(config, out_dir=tmp_path, epochs=1, batch_size=16, data=data, progress=False,
             threads=1, silence_extra=0.1)
    saved = tr.read_checkpoint(tmp_path / "last.pt")["config"]
    assert saved["features"] == "band-mean"
    assert tr.load_checkpoint(tmp_path / "best.pt").config.features == "band-mean"
    assert tr._run_features(None, tmp_path, True, None, None) == "band-mean"  # resume
    with pytest.raises(ValueError, match=r"eq_prob.*features='band-mean'"):
        tr.train(config, out_dir=tmp_path / "eq", epochs=1, batch_size=16, data=data,
                 progress=False, threads=1, eq_prob=0.5)


@pytest.fixture
def tiny_gsc(tmp_path):
    """yes/no/up/bed, 3 speakers each (the synthetic clips above), two noise files."""
    root = tmp_path / "gsc"
    for i, word in enumerate(["yes", "no", "up", "bed"]):
        for j, speaker in enumerate(["aaaa0000", "bbbb1111", "cccc2222"]):
            path = root / word / f"{speaker}_nohash_0.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(10 * i + j), 16000, subtype="PCM_16")
    rng = np.random.default_rng(0)
    for name in ("white_noise", "pink_noise"):
        path = root / "_background_noise_" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal(16000 * 12)).astype(np.float32), 16000,
                 subtype="PCM_16")
    (root / "validation_list.txt").write_text("yes/bbbb1111_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("".join(f"{w}/cccc2222_nohash_0.wav\n"
                                                   for w in ("yes", "no", "up", "bed")))
    return root


def test_cli_train_export_evaluate_golden_carry_band_mean(tiny_gsc, tmp_path, capsys):
    import json

    from cosparse.sw.cli import main
    from cosparse.sw.data.dataset import load_features
    run, spec_dir = tmp_path / "run", tmp_path / "spec"
    assert main(["train", "--data", str(tiny_gsc), "--out", str(run), "--epochs", "1",
                 "--features", "band-mean", "--hidden", "200", "--threads", "1", "--quiet"]) == 0
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_gsc),
                 "--out", str(spec_dir)]) == 0
    spec = netspec.load(spec_dir)
    assert F.normalisation_of(spec.input.quant) == "band-mean"
    capsys.readouterr()
    assert main(["evaluate", "--dataset", str(tiny_gsc), "--netspec", str(spec_dir),
                 "--checkpoint", str(run / "best.pt"), "--json", "--no-breakdown"]) == 0
    report = json.loads(capsys.readouterr().out)
    # it computed (and cached) the testing split's band-mean features, and no others
    from cosparse.sw.data.dataset import CACHE_DIR, _cache_key
    from cosparse.sw.data.gsc import list_split
    key = _cache_key(list_split(tiny_gsc, "testing"), "band-mean")
    assert sorted(p.name for p in (tiny_gsc / CACHE_DIR).glob("testing-*.npz")) == \
        [f"testing-{key}.npz"]
    x, y, _ = load_features(tiny_gsc, "testing", progress=False, normalisation="band-mean")
    # the golden model ran on band-mean features: its accuracy is theirs, not the "none" ones'
    assert report["golden_int8_accuracy"] == pytest.approx(
        float((golden.run(spec, x).predictions == y).mean()))
    assert report["golden_agrees_with_float_int8_rounded"] == 1.0
    wavs = sorted(str(p) for p in tiny_gsc.glob("yes/*.wav"))
    assert main(["golden", "--netspec", str(spec_dir), "--wav", *wavs, "--json"]) == 0
    logits = [r["logits"] for r in json.loads(capsys.readouterr().out)["inputs"]]
    expected = golden.run(spec, np.stack([F.wav_to_features(p, normalisation="band-mean")
                                          for p in wavs]))
    assert logits == expected.logits.tolist()
    # a checkpoint and a NetSpec of different normalisations are refused by name
    assert main(["evaluate", "--dataset", str(tiny_gsc), "--checkpoint",
                 str(run / "best.pt")]) == 2
    assert "trained on features='band-mean' but the NetSpec records 'none'" in \
        capsys.readouterr().err
    assert main(["evaluate", "--dataset", str(tiny_gsc), "--netspec", str(spec_dir),
                 "--checkpoint", str(run / "best.pt"), "--dense-checkpoint",
                 str(assets.DEFAULT_CHECKPOINT)]) == 2
    assert "trained on features='none' but the NetSpec records 'band-mean'" in \
        capsys.readouterr().err
    assert main(["train", "--data", str(tiny_gsc), "--out", str(tmp_path / "bad"), "--epochs",
                 "1", "--features", "cmn", "--quiet"]) == 2
    assert "unknown feature normalisation 'cmn'" in capsys.readouterr().err
