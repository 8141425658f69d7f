"""Fault injection on inputs (issue 14): features files, wav files, data sets, CLI options.

Every bad input ends in one named error (exit 2 from the CLI, the file and
the rule in the message) before any expensive step, or is handled as
docs/data.md says; never a traceback or a silently different result.
"""

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf

from cosparse.sw import assets, features, golden, inputs, netspec
from cosparse.sw.cli import main
from cosparse.sw.data import gsc
from cosparse.sw.data.dataset import CACHE_DIR, load_features

RATE = 16000


@pytest.fixture
def net(tmp_path):
    spec = netspec.random_netspec(5)
    return spec, netspec.save(spec, tmp_path / "net")


def _golden(capsys, *args):
    code = main(["golden", *map(str, args)])
    err = capsys.readouterr().err
    return code, err


# ---- features files -------------------------------------------------------------------------

def _save_raw(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, make, message", [
    ("npz", lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((1, 1, 8, 8), np.int8))
     or os.replace(p.with_suffix(".npz"), p), "is an .npz archive"),
    ("0-d", lambda p: np.save(p, np.int8(3)), "shape \\[\\]; expected"),
    ("1-d", lambda p: np.save(p, np.zeros(5, np.int8)), "shape \\[5\\]; expected"),
    ("empty file", lambda p: _save_raw(p, b""), "empty file"),
    ("text file", lambda p: _save_raw(p, b"1 2 3\n"), "no .npy magic"),
    ("object dtype", lambda p: np.save(p, np.array([None] * 4, object).reshape(1, 1, 2, 2),
                                       allow_pickle=True), "holds dtype object"),
    ("no inputs", lambda p: np.save(p, np.zeros((0, 1, 32, 32), np.int8)), "holds no inputs"),
    ("truncated", lambda p: (np.save(p, np.zeros((50, 1, 32, 32), np.int8)),
                             _save_raw(p, p.read_bytes()[:5000])), "is truncated or damaged"),
    ("huge header", lambda p: _save_raw(p, _huge_header()), "promises shape \\[100000000000"),
    ("directory", lambda p: p.mkdir(), "is a directory"),
    # found by fuzzing: numpy's header parser raised tokenize.TokenError
    ("garbage header", lambda p: _save_raw(p, b"\x93NUMPY\x01\x00~\x00{'descr': '|i1', "
                                              b"'fortran_order': False, 'shape': (1, 8, 8), }"
                                              + b" " * 55 + b"\n\x1fbud[&EF"),
     "not a readable .npy file"),
])
def test_bad_features_file_is_named(net, tmp_path, capsys, case, make, message):
    _, folder = net
    path = tmp_path / "x.npy"
    make(path)
    code, err = _golden(capsys, "--netspec", folder, "--features", path)
    assert code == 2 and "Traceback" not in err
    assert str(path) in err or case == "huge header"
    import re
    assert re.search(message, err), err


def _huge_header() -> bytes:
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|i1", "fortran_order": False, "shape": (10 ** 11, 1, 32, 32)})
    return buffer.getvalue() + b"\0" * 64


def test_n_h_w_features_are_taken_for_a_one_channel_input(tmp_path, capsys):
    spec = next(s for s in map(netspec.random_netspec, range(50)) if s.input.shape[0] == 1)
    folder = netspec.save(spec, tmp_path / "net")
    x = netspec.random_inputs(spec, 24, seed=1)
    np.save(tmp_path / "x.npy", x[:, 0])
    assert main(["golden", "--netspec", str(folder), "--features", str(tmp_path / "x.npy"),
                 "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert [r["logits"] for r in report["inputs"]] == golden.run(spec, x).logits.tolist()


def test_wrong_shape_is_refused_before_a_simulation(net, tmp_path, capsys, monkeypatch):
    """simulate and run check the inputs before building anything."""
    _, folder = net
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 3, 3), np.int8))
    import cosparse.sim.build as build_module

    def no_build(*args, **kwargs):
        raise AssertionError("a build started before the inputs were checked")

    monkeypatch.setattr(build_module, "build", no_build)
    for command in (["simulate"], ["run"]):
        code = main([*command, "--netspec", str(folder), "--features", str(tmp_path / "x.npy")])
        assert code == 2 and "inputs have shape" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["run", "--throughput", "0"], "--throughput: must be a positive int"),
    (["run", "--throughput", "-3"], "--throughput: must be a positive int"),
    (["run", "--timeout", "0"], "--timeout: must be a positive float"),
    (["throughput", "--batch", "0"], "--batch: must be a positive int"),
    (["evaluate", "--checkpoint", "c", "--dataset", "d", "--limit", "0"],
     "--limit: must be a positive int"),
    (["golden", "--wav", "a.wav", "--limit", "3"], "--limit applies to --dataset only"),
    (["run", "--features", "x.npy", "--limit", "3"], "--limit applies to --dataset only"),
    (["golden", "--dataset", "d", "--convert"], "--convert applies to --wav only"),
    (["simulate", "--dataset", "d", "--limit", "0"], "--limit: must be a positive int"),
])
def test_ignored_or_impossible_options_are_refused_first(capsys, args, message):
    try:
        code = main(args)
    except SystemExit as stop:  # refused by the parser (inputs.positive)
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err


# ---- wav files ------------------------------------------------------------------------------

def _wav(path, audio, subtype="PCM_16", rate=RATE):
    sf.write(path, np.asarray(audio, np.float32), rate, subtype=subtype)
    return path


def test_truncated_wav_is_refused(tmp_path):
    path = _wav(tmp_path / "t.wav", np.full(16000, 0.1))
    path.write_bytes(path.read_bytes()[:44 + 1000])
    with pytest.raises(features.AudioError, match="t.wav: is truncated: its header promises "
                                                  "32000 bytes"):
        features.load_wav(path)


def test_directory_given_as_wav(tmp_path, capsys):
    code, err = _golden(capsys, "--wav", tmp_path)
    assert code == 2 and "is a directory, not an audio file" in err


def test_float_wav_beyond_full_scale_names_the_file(tmp_path):
    path = _wav(tmp_path / "loud.wav", np.full(16000, 1e30), subtype="FLOAT")
    with pytest.raises(features.AudioError, match="loud.wav: holds samples of magnitude up to "
                                                  "1e\\+30, beyond full scale"):
        features.wav_to_features(path)
    converted = features.wav_to_features(path, convert=True)
    assert converted.shape == features.FEATURE_SHAPE


def test_clipped_pcm_audio_is_processed_as_is(tmp_path):
    """Samples at full scale are legal PCM: features are relative to the loudest cell."""
    t = np.arange(16000) / RATE
    path = _wav(tmp_path / "clip.wav", np.clip(3 * np.sin(2 * np.pi * 440 * t), -1, 1))
    x = features.wav_to_features(path)
    assert x.max() == features.QMAX and x.dtype == np.int8


def test_digital_silence_predicts_silence_on_the_shipped_model(tmp_path):
    spec = netspec.load(assets.require(assets.DEFAULT_NETSPEC, "default NetSpec"))
    path = _wav(tmp_path / "zeros.wav", np.zeros(16000))
    result = golden.run(spec, features.wav_to_features(path))
    assert spec.classes[int(result.predictions[0])] == "silence"


# ---- data sets ------------------------------------------------------------------------------

def _clip(path, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE,
             subtype="PCM_16")


@pytest.fixture
def fake_gsc(tmp_path):
    root = tmp_path / "gsc"
    for i, word in enumerate(["yes", "no", "bed"]):
        for spk in ["aaaa0000", "bbbb1111", "cccc2222"]:
            _clip(root / word / f"{spk}_nohash_0.wav", 300 + 100 * i)
    rng = np.random.default_rng(0)
    root.joinpath(gsc.NOISE_DIR).mkdir()
    sf.write(root / gsc.NOISE_DIR / "white.wav",
             (0.1 * rng.standard_normal(12 * RATE)).astype(np.float32), RATE, subtype="PCM_16")
    (root / "validation_list.txt").write_text("yes/bbbb1111_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/cccc2222_nohash_0.wav\n")
    return root


@pytest.mark.parametrize("entry", ["../../x.wav", "/etc/x.wav", "yes/../no/cccc2222_nohash_0.wav",
                                   "x.wav", "_background_noise_/white.wav", "a/b/c.wav"])
def test_list_entries_outside_the_data_set_are_refused(fake_gsc, entry):
    (fake_gsc / "testing_list.txt").write_text(f"no/cccc2222_nohash_0.wav\n{entry}\n")
    with pytest.raises(gsc.LayoutError, match="testing_list.txt, line 2: .* is not a clip"):
        gsc.list_split(fake_gsc, "testing")


def test_a_clip_in_both_held_out_lists_is_refused(fake_gsc):
    (fake_gsc / "testing_list.txt").write_text("no/cccc2222_nohash_0.wav\n"
                                               "yes/bbbb1111_nohash_0.wav\n")
    with pytest.raises(gsc.LayoutError, match="listed in both"):
        gsc.list_split(fake_gsc, "train")


def _cache_file(root):
    return next((root / CACHE_DIR).glob("testing-*.npz"))


def test_an_edited_features_cache_is_recomputed(fake_gsc):
    X, y, _ = load_features(fake_gsc, "testing", progress=False)
    path = _cache_file(fake_gsc)
    with np.load(path) as cached:
        arrays = dict(cached)
    arrays["X"] = np.zeros_like(arrays["X"])
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="do not match its digest"):
        again, _, _ = load_features(fake_gsc, "testing", progress=False)
    np.testing.assert_array_equal(again, X)


def test_a_truncated_features_cache_is_recomputed(fake_gsc):
    X, _, _ = load_features(fake_gsc, "testing", progress=False)
    path = _cache_file(fake_gsc)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable"):
        again, _, _ = load_features(fake_gsc, "testing", progress=False)
    np.testing.assert_array_equal(again, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_features(fake_gsc, "testing", progress=False)  # the rewritten cache is good


def test_a_clip_edited_with_the_same_size_and_time_changes_the_key(fake_gsc):
    load_features(fake_gsc, "testing", progress=False)
    clip = fake_gsc / "no" / "cccc2222_nohash_0.wav"
    stat = clip.stat()
    data, rate = sf.read(clip, dtype="int16")
    sf.write(clip, (-data).astype(np.int16), rate, subtype="PCM_16")
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert clip.stat().st_size == stat.st_size
    load_features(fake_gsc, "testing", progress=False)
    assert len(list((fake_gsc / CACHE_DIR).glob("testing-*.npz"))) == 2


def test_two_processes_computing_one_split_share_one_cache(fake_gsc, tmp_path):
    """Both succeed with the same features; one computes, the other waits and reads its file."""
    import subprocess
    import sys
    script = ("import sys, numpy as np, warnings; warnings.simplefilter('error');"
              "from cosparse.sw.data.dataset import load_features;"
              "X, y, _ = load_features(sys.argv[1], 'testing', progress=False);"
              "np.save(sys.argv[2], X)")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(fake_gsc),
                              str(tmp_path / f"{i}.npy")], stderr=subprocess.PIPE, text=True)
            for i in range(2)]
    for run in runs:
        assert run.wait(300) == 0, run.stderr.read()[-2000:]
    X, _, _ = load_features(fake_gsc, "testing", progress=False, cache=False)
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), X)
    assert len(list((fake_gsc / CACHE_DIR).glob("testing-*.npz"))) == 1
    assert not list((fake_gsc / CACHE_DIR).glob(".*"))  # no temporary file left


def test_an_unwritable_cache_folder_only_warns(fake_gsc):
    (fake_gsc / CACHE_DIR).write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="cannot write the features cache"):
        X, _, _ = load_features(fake_gsc, "testing", progress=False)
    assert X.shape[1:] == features.FEATURE_SHAPE


# ---- generate --out -------------------------------------------------------------------------

def _generate(capsys, net, out, monkeypatch):
    """``cosparse generate --out out``; generation itself must not be reached."""
    from cosparse.hw import generate as generate_module

    def never(*args, **kwargs):
        raise AssertionError("generation started before --out was checked")

    monkeypatch.setattr(generate_module, "generate", never)
    code = main(["generate", "--netspec", str(net[1]), "--out", str(out), "--no-progress"])
    return code, capsys.readouterr().err


def test_generate_out_naming_an_existing_file_is_refused(net, tmp_path, capsys, monkeypatch):
    out = tmp_path / "taken"
    out.write_text("keep me")
    code, err = _generate(capsys, net, out, monkeypatch)
    assert code == 2 and "exists and is not a folder" in err and "Traceback" not in err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("layout", ["out is a link", "parent is a link", "file is a link"])
def test_generate_out_through_a_symlink_is_refused(net, tmp_path, capsys, monkeypatch, layout):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if layout == "out is a link":
        out = tmp_path / "out"
        out.symlink_to(elsewhere)
    elif layout == "parent is a link":
        (tmp_path / "link").symlink_to(elsewhere)
        out = tmp_path / "link" / "out"
    else:
        out = tmp_path / "out"
        out.mkdir()
        (out / "cosparse_top.v").symlink_to(elsewhere / "victim.v")
    code, err = _generate(capsys, net, out, monkeypatch)
    assert code == 2 and "symbolic link" in err and "Traceback" not in err
    assert list(elsewhere.iterdir()) == []
