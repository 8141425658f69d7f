"""The cosparse command: golden on a NetSpec and inputs, errors as one clear line."""

import json

import numpy as np
import pytest

from cosparse.sw import assets, golden, netspec
from cosparse.sw.cli import main


@pytest.fixture
def random_net(tmp_path):
    spec = netspec.random_netspec(5)
    folder = netspec.save(spec, tmp_path / "net")
    x = netspec.random_inputs(spec, 4, seed=1)
    np.save(tmp_path / "x.npy", x)
    return spec, folder, x, tmp_path / "x.npy"


def test_golden_json_reports_predictions_and_work(random_net, capsys):
    spec, folder, x, npy = random_net
    assert main(["golden", "--netspec", str(folder), "--features", str(npy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = golden.run(spec, x)
    assert [r["prediction"] for r in report["inputs"]] == [spec.classes[p]
                                                            for p in expected.predictions]
    assert [r["logits"] for r in report["inputs"]] == expected.logits.tolist()
    layers = report["inputs"][0]["layers"]
    assert [l["name"] for l in layers] == [l.name for l in spec.packed_layers]
    assert all(l["useful_macs"] <= l["packed_macs"] <= l["dense_macs"] for l in layers)
    assert report["summary"]["inputs"] == 4 and report["summary"]["accuracy"] is None


def test_golden_table_output(random_net, capsys):
    _, folder, _, npy = random_net
    assert main(["golden", "--netspec", str(folder), "--features", str(npy)]) == 0
    out = capsys.readouterr().out
    assert "useful MACs/input" in out and "dense/useful" in out


@pytest.mark.parametrize("make_args, message", [
    (lambda p: ["golden", "--netspec", str(p / "missing")], "not found"),
    (lambda p: ["golden", "--netspec", str(p / "net"), "--features", str(p / "nope.npy")],
     "features file"),
    (lambda p: ["golden", "--netspec", str(p / "net"), "--features", str(p / "bad.npy")],
     "shape"),
])
def test_errors_are_one_line_and_exit_2(random_net, tmp_path, capsys, make_args, message):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3), np.int8))
    assert main(make_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(not assets.DEFAULT_NETSPEC.exists(), reason="no shipped default model yet")
def test_golden_with_no_arguments_runs_the_shipped_samples(capsys):
    assert main(["golden", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["inputs"]) >= 12
    assert all(r["label"] is not None for r in report["inputs"])
    assert report["summary"]["accuracy"] >= 0.75


def test_wav_labels_follow_the_gsc_layout(tmp_path):
    """A keyword folder gives its class, any other word folder of a GSC layout 'unknown',
    a ``<class>_<i>.wav`` name its class, anything else no label (-1)."""
    from cosparse.sw.data.gsc import CLASSES
    from cosparse.sw.inputs import _label_from_path

    cases = {
        "yes/0a1b_nohash_0.wav": CLASSES.index("yes"),
        "backward/0a1b_nohash_3.wav": CLASSES.index("unknown"),
        "_background_noise_/white_noise.wav": -1,
        "clips/left_1.wav": CLASSES.index("left"),
        "clips/recording.wav": -1,
    }
    for relative, label in cases.items():
        assert _label_from_path(tmp_path / relative) == label, relative
