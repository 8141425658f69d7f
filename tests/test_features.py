"""Edge cases of the audio front end (sw/features.py)."""
import numpy as np
import pytest
import soundfile as sf

from cosparse.sw import features as F


def _tone(n=F.CLIP_SAMPLES, rate=F.SAMPLE_RATE, freq=440.0):
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(tmp_path, name, data, rate=F.SAMPLE_RATE, subtype="PCM_16"):
    path = tmp_path / name
    sf.write(path, data, rate, subtype=subtype)
    return path


def test_load_plain_clip(tmp_path):
    audio = F.load_wav(_write(tmp_path, "a.wav", _tone()))
    assert audio.shape == (F.CLIP_SAMPLES,) and audio.dtype == np.float32


def test_wrong_rate_is_error_and_convert_resamples(tmp_path):
    path = _write(tmp_path, "r.wav", _tone(22050, 22050), rate=22050)
    with pytest.raises(F.AudioError, match=r"22050 Hz.*convert=True.*sox"):
        F.load_wav(path)
    audio = F.load_wav(path, convert=True)
    assert audio.shape == (F.CLIP_SAMPLES,)
    # 1 s at 22.05 kHz becomes 1 s at 16 kHz, not padded or cropped.
    assert np.abs(audio[-200:]).max() > 0.1


def test_stereo_is_error_and_convert_averages(tmp_path):
    tone = _tone()
    path = _write(tmp_path, "s.wav", np.stack([tone, 0 * tone], axis=1))
    with pytest.raises(F.AudioError, match=r"2 channels.*convert=True"):
        F.load_wav(path)
    audio = F.load_wav(path, convert=True)
    assert np.allclose(audio, tone / 2, atol=1e-4)


def test_empty_file_is_error(tmp_path):
    path = _write(tmp_path, "e.wav", np.zeros(0, np.float32))
    with pytest.raises(F.AudioError, match="no samples"):
        F.load_wav(path)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(F.AudioError, match="not a readable audio file"):
        F.load_wav(bad)
    with pytest.raises(F.AudioError, match="no such file"):
        F.load_wav(tmp_path / "missing.wav")


def test_nan_samples_are_error(tmp_path):
    tone = _tone()
    tone[100] = np.nan
    path = _write(tmp_path, "n.wav", tone, subtype="FLOAT")
    with pytest.raises(F.AudioError, match="NaN"):
        F.load_wav(path)


def test_short_clip_is_zero_padded_at_end(tmp_path):
    audio = F.load_wav(_write(tmp_path, "short.wav", _tone(8000)))
    assert audio.shape == (F.CLIP_SAMPLES,)
    assert np.abs(audio[:8000]).max() > 0.1 and not audio[8000:].any()


def test_long_clip_is_error_and_convert_keeps_centre(tmp_path):
    data = np.zeros(24000, np.float32)
    data[4000:20000] = 0.5
    path = _write(tmp_path, "long.wav", data)
    with pytest.raises(F.AudioError, match=r"1\.500 s.*convert=True"):
        F.load_wav(path)
    audio = F.load_wav(path, convert=True)
    assert np.allclose(audio, 0.5, atol=1e-4)


def test_digital_silence_is_flat_at_0_db():
    """All-zero audio: every cell equals the loudest, 0 dB, quantised to 127 everywhere."""
    db = F.logmel(np.zeros(F.CLIP_SAMPLES, np.float32))
    assert db.shape == (F.N_MELS, F.N_FRAMES) and np.all(db == F.DB_CEIL)
    assert np.all(F.quantise_features(db) == F.QMAX)


def test_logmel_range_and_shape():
    db = F.logmel(_tone())
    assert db.dtype == np.float32 and db.shape == (32, 32)
    assert db.max() == 0.0 and db.min() >= -80.0


def test_logmel_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        F.logmel(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        F.logmel(np.zeros(F.CLIP_SAMPLES, np.int16))
    bad = _tone()
    bad[0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        F.logmel(bad)


def test_quantisation_endpoints_and_half_up():
    db = np.full((32, 32), -80.0)
    db[0, 0] = 0.0
    step = 80.0 / 127
    db[0, 1] = -40.0                       # 63.5 exactly: half up gives 64
    db[0, 2] = -80.0 + 12.5 * step         # 12.5 exactly: half up 13, half-even 12
    db[0, 3] = -80.0 + 0.49 * step         # below half: 0
    db[0, 4] = -100.0                      # below the floor saturates to 0
    db[0, 5] = 3.0                         # above the ceiling saturates to 127
    assert (db[0, 2] + 80.0) * (127 / 80) == 12.5
    q = F.quantise_features(db)
    assert q.dtype == np.int8 and q.shape == (1, 32, 32)
    assert list(q[0, 0, :6]) == [127, 64, 13, 0, 0, 127]
    assert q[0, 1, 0] == 0
    assert np.allclose(F.dequantise_features(q)[0, 0, 0], 1.0)


def test_quantise_rejects_nan():
    db = np.zeros((32, 32))
    db[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.quantise_features(db)


def test_wav_to_features_and_batch(tmp_path):
    paths = [_write(tmp_path, f"{i}.wav", _tone(freq=300 + 200 * i)) for i in range(3)]
    x = F.features_batch(paths, progress=False)
    assert x.shape == (3, 1, 32, 32) and x.dtype == np.int8
    assert np.array_equal(x[1], F.wav_to_features(paths[1]))
    assert x.min() >= 0 and x.max() == 127


def test_validate_features_accepts_shapes():
    one = np.zeros((1, 32, 32), np.int8)
    assert F.validate_features(one).shape == (1, 1, 32, 32)
    assert F.validate_features(np.zeros((5, 32, 32), np.int64)).shape == (5, 1, 32, 32)
    out = F.validate_features(np.full((2, 1, 32, 32), 127.0))
    assert out.dtype == np.int8 and out.max() == 127


@pytest.mark.parametrize("x, pattern", [
    (np.zeros((32, 32), np.int8), r"shape \[32, 32\].*expected"),
    (np.zeros((2, 2, 32, 32), np.int8), r"shape \[2, 2, 32, 32\]"),
    (np.full((1, 32, 32), 128, np.int16), r"\[128, 128\], expected \[0, 127\]"),
    (np.full((1, 32, 32), -1, np.int8), r"expected \[0, 127\]"),
    (np.full((1, 32, 32), 0.5), "non-integer"),
    (np.full((1, 32, 32), np.nan), "NaN"),
    (np.full((1, 32, 32), "a"), "dtype"),
])
def test_validate_features_errors(x, pattern):
    with pytest.raises(ValueError, match=pattern):
        F.validate_features(x)


def test_input_quant_spec():
    spec = F.input_quant_spec()
    assert spec["db_floor"] == -80.0 and spec["qmax"] == 127
    assert spec["scale"] == pytest.approx(127 / 80) and spec["rounding"] == "half_up"
