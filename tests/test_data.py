"""GSC loader, feature cache and the espeak-ng synthetic data set."""
import shutil

import numpy as np
import pytest
import soundfile as sf

from cosparse.sw.data import gsc, synth
from cosparse.sw.data.dataset import CACHE_DIR, load_features

RATE = 16000


def _wav(path, seconds=0.5, freq=440.0, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, audio.astype(np.float32), RATE, subtype="PCM_16")


@pytest.fixture
def fake_gsc(tmp_path):
    """yes/no/marvin/bed with 3 speakers each, two 12 s noise files."""
    root = tmp_path / "gsc"
    for i, word in enumerate(["yes", "no", "marvin", "bed"]):
        for spk in ["aaaa0000", "bbbb1111", "cccc2222"]:
            _wav(root / word / f"{spk}_nohash_0.wav", freq=300 + 100 * i)
    for i, name in enumerate(["white_noise", "hum"]):
        _wav(root / gsc.NOISE_DIR / f"{name}.wav", seconds=12, freq=60, seed=i)
    (root / "validation_list.txt").write_text("yes/bbbb1111_nohash_0.wav\nmarvin/bbbb1111_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/cccc2222_nohash_0.wav\nbed/cccc2222_nohash_0.wav\n")
    return root


def test_splits_and_labels(fake_gsc):
    train = gsc.list_split(fake_gsc, "train")
    clips = [e for e in train if e.word != "silence"]
    assert len(clips) == 8
    assert {e.name for e in clips}.isdisjoint({"yes/bbbb1111_nohash_0.wav", "no/cccc2222_nohash_0.wav"})
    labels = {e.word: e.label for e in clips}
    assert labels == {"yes": 0, "no": 1, "marvin": gsc.UNKNOWN, "bed": gsc.UNKNOWN}
    silence = [e for e in train if e.word == "silence"]
    assert len(silence) == 1 and silence[0].label == gsc.SILENCE      # ceil(0.1 * 8)
    val = gsc.list_split(fake_gsc, "validation", silence_fraction=0.5)
    assert sorted(e.name for e in val if e.word != "silence") == [
        "marvin/bbbb1111_nohash_0.wav", "yes/bbbb1111_nohash_0.wav"]
    assert sum(e.word == "silence" for e in val) == 1


def test_silence_windows_disjoint_and_deterministic(fake_gsc):
    spans = {}
    for split in gsc.SPLITS:
        windows = [e for e in gsc.list_split(fake_gsc, split, silence_fraction=5)
                   if e.word == "silence"]
        assert windows == [e for e in gsc.list_split(fake_gsc, split, silence_fraction=5)
                           if e.word == "silence"]
        assert all(0 <= e.gain <= 1 for e in windows)
        spans[split] = [(e.path.name, e.noise_start, e.noise_start + RATE) for e in windows]
    for a in gsc.SPLITS:
        for b in gsc.SPLITS:
            if a < b:
                for name, s0, e0 in spans[a]:
                    for name2, s1, e1 in spans[b]:
                        assert name != name2 or e0 <= s1 or e1 <= s0
    audio = gsc.load_example(gsc.list_split(fake_gsc, "testing")[-1])
    assert audio.shape == (RATE,) and audio.dtype == np.float32


def test_unknown_cap(fake_gsc):
    train = gsc.list_split(fake_gsc, "train", unknown_fraction=0.25, silence_fraction=0)
    assert sum(e.label == gsc.UNKNOWN for e in train) == 1          # ceil(0.25 * 4 keywords)
    assert len(train) == 5


@pytest.mark.parametrize("breakage, pattern", [
    (lambda r: (r / "validation_list.txt").unlink(), "validation_list.txt is missing"),
    (lambda r: [shutil.rmtree(r / w) for w in ["yes", "no", "marvin", "bed"]], "no word folders"),
    (lambda r: shutil.rmtree(r / gsc.NOISE_DIR), "no background-noise wavs"),
    (lambda r: (r / "testing_list.txt").write_text("yes/gone_nohash_0.wav\n"), "do not exist"),
])
def test_broken_layouts(fake_gsc, breakage, pattern):
    breakage(fake_gsc)
    with pytest.raises(gsc.LayoutError, match=pattern):
        gsc.list_split(fake_gsc, "testing")


def test_bad_root_and_split(tmp_path, fake_gsc):
    with pytest.raises(gsc.LayoutError, match="no such folder"):
        gsc.list_split(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        gsc.list_split(fake_gsc, "test")


def test_load_features_caches(fake_gsc):
    X, y, names = load_features(fake_gsc, "train", progress=False)
    assert X.shape == (9, 1, 32, 32) and X.dtype == np.int8 and y.dtype == np.int64
    assert list(y[:3]) == [gsc.UNKNOWN, gsc.UNKNOWN, gsc.UNKNOWN] and y[-1] == gsc.SILENCE
    assert len(names) == 9 and len(list((fake_gsc / CACHE_DIR).glob("train-*.npz"))) == 1
    X2, y2, _ = load_features(fake_gsc, "train", progress=False)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _, _ = load_features(fake_gsc, "train", progress=False, jobs=2, cache=False)
    assert np.array_equal(X, X3)


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    out = tmp_path_factory.mktemp("synth") / "a"
    kw = dict(seed=3, clips_per_word=2, unknown_clips_per_word=2, words=["yes", "no", "go"],
              unknown_words=["bed", "marvin"], config=synth.Config(speakers=4), jobs=1,
              progress=False)
    synth.synthesise(out, **kw)
    return out, kw


def test_synth_layout(tiny_synth):
    out, _ = tiny_synth
    words = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert words == ["bed", "go", "marvin", "no", "yes"]
    noise_files = sorted(p.stem for p in (out / gsc.NOISE_DIR).glob("*.wav"))
    assert noise_files == sorted(synth.NOISE_FILES)
    info = sf.info(str(out / gsc.NOISE_DIR / "babble.wav"))
    assert info.samplerate == RATE and info.frames == synth.NOISE_SECONDS * RATE
    for wav in out.glob("*/*_nohash_*.wav"):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        assert info.frames == RATE
    assert (out / "validation_list.txt").is_file() and (out / "testing_list.txt").is_file()


def test_synth_splits_by_speaker(tiny_synth):
    out, _ = tiny_synth
    listed = {}
    for split, name in gsc.LIST_FILES.items():
        for line in (out / name).read_text().split():
            listed[line.split("/")[1].split("_")[0]] = split
    for wav in out.glob("*/*_nohash_*.wav"):
        assert listed.get(wav.name.split("_")[0], "train") == synth.split_of(wav.name[:8])


def test_synth_is_deterministic(tiny_synth, tmp_path):
    out, kw = tiny_synth
    again = synth.synthesise(tmp_path / "b", **{**kw, "jobs": 2})
    files = sorted(p.relative_to(out) for p in out.rglob("*.wav"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_synth_loads_through_gsc_loader(tiny_synth):
    out, _ = tiny_synth
    splits = ["train"] + [s for s, name in gsc.LIST_FILES.items() if (out / name).read_text()]
    examples = [e for s in splits for e in gsc.list_split(out, s)]
    clips = [e for e in examples if e.word != "silence"]
    assert len(clips) == 10
    assert {e.label for e in clips} == {0, 1, 9, gsc.UNKNOWN}
    X, y, _ = load_features(out, "train", cache=False, progress=False)
    assert X.shape[0] == len(y) > 0


def test_synth_samples(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    paths = synth.synthesise_samples(tmp_path, per_class=1)
    assert sorted(p.name for p in paths) == sorted(f"{c}_0.wav" for c in gsc.CLASSES)
    assert all(sf.info(str(p)).frames == RATE for p in paths)


def test_synth_cli_registers():
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    synth.register_cli(sub)
    args = sub.choices["synth"].parse_args(["--out", "x", "--seed", "5"])
    assert args.func is synth.cli_synth and args.seed == 5 and args.clips_per_word == synth.Config.clips_per_word


# ---- several speech engines, leave-one-engine-out ---------------------------

@pytest.fixture(scope="module")
def engines_synth(tmp_path_factory):
    missing = [e for e in synth.engines.ENGINES if shutil.which(e) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    out = tmp_path_factory.mktemp("engines") / "a"
    cfg = synth.Config(speakers=6, other_speakers=6, engines=synth.engines.ENGINES,
                       holdout_engine="festival", snr_db=(0.0, 45.0), snr_skew=1.5)
    kw = dict(seed=5, clips_per_word=12, unknown_clips_per_word=3, words=["yes", "left"],
              unknown_words=["bed"], config=cfg, jobs=1, progress=False)
    synth.synthesise(out, **kw)
    return out, kw


def test_engines_each_speak_with_their_voices(engines_synth):
    out, _ = engines_synth
    rows = synth.read_manifest(out).values()
    assert {r["engine"] for r in rows} == set(synth.engines.ENGINES)
    for engine in ("flite", "festival"):
        assert {r["voice"] for r in rows if r["engine"] == engine} <= set(
            synth.engines.voices(engine))
    assert "awb_time" not in synth.engines.voices("flite")  # a clock: says times only
    for wav in out.glob("*/*_nohash_*.wav"):
        audio, rate = sf.read(wav)
        assert rate == RATE and len(audio) == RATE and np.abs(audio).max() > 0.05


def test_held_out_engine_never_reaches_training(engines_synth):
    out, _ = engines_synth
    manifest = synth.read_manifest(out)
    train = {e.name for e in gsc.list_split(out, "train") if e.word != "silence"}
    held = {c for c, r in manifest.items() if r["engine"] == "festival"}
    assert held and train and not held & train
    assert {manifest[c]["engine"] for c in train} == {"espeak-ng", "flite"}
    for split in ("validation", "testing"):
        listed = {e.name for e in gsc.list_split(out, split) if e.word != "silence"}
        assert {c for c in listed if manifest[c]["split"] != split} == set()
    assert {r["split"] for c, r in manifest.items() if c in held} <= {"validation", "testing"}


def test_manifest_snr_is_within_the_range(engines_synth):
    out, _ = engines_synth
    snrs = [float(r["snr_db"]) for r in synth.read_manifest(out).values() if r["snr_db"]]
    assert snrs and all(0.0 <= s <= 45.0 for s in snrs)


def test_snr_skew_weights_towards_low_snr():
    rng = np.random.default_rng(0)
    uniform = [synth._snr(rng, synth.Config(snr_db=(0.0, 45.0))) for _ in range(2000)]
    skewed = [synth._snr(rng, synth.Config(snr_db=(0.0, 45.0), snr_skew=1.5)) for _ in range(2000)]
    assert min(skewed) >= 0 and max(skewed) <= 45
    assert np.mean(skewed) < np.mean(uniform) - 3


def test_default_set_keeps_its_espeak_speakers():
    """The default set (espeak-ng alone) keeps its speaker ids and draws (same files as before
    other engines existed)."""
    import hashlib

    sp = synth.Speaker("en-us", "m1", 50, 160)
    assert sp.id == hashlib.sha1(b"en-us+m1/50/160").hexdigest()[:8]
    assert synth.Speaker("slt", "", 0, 100, "flite").id != synth.Speaker("slt", "", 0, 100).id
    assert synth.Config().engines == ("espeak-ng",) and synth.Config().holdout_engine is None
    assert synth.Config().snr_db == (20.0, 45.0) and synth.Config().snr_skew == 1.0


@pytest.mark.parametrize("cfg, pattern", [
    (dict(engines=("espeak-ng",), holdout_engine="flite"), "not one of --engines"),
    (dict(engines=("flite",), holdout_engine="flite"), "at least two --engines"),
    (dict(snr_db=(30.0, 10.0)), "LO <= HI"),
    (dict(snr_skew=0.0), "snr-skew"),
])
def test_bad_engine_settings_are_named(tmp_path, cfg, pattern):
    if shutil.which("espeak-ng") is None or shutil.which("flite") is None:
        pytest.skip("espeak-ng or flite not installed")
    with pytest.raises(ValueError, match=pattern):
        synth.synthesise(tmp_path / "x", config=synth.Config(**cfg), progress=False)
    assert not (tmp_path / "x").exists()


def test_engine_names_are_checked():
    assert synth.engines.parse_engines("espeak-ng, flite") == ("espeak-ng", "flite")
    with pytest.raises(ValueError, match="unknown speech engine 'say'"):
        synth.engines.parse_engines("espeak-ng,say")
    with pytest.raises(ValueError, match="twice"):
        synth.engines.parse_engines("flite,flite")

