"""`cosparse evaluate`'s accuracy per SNR band and per speech engine, on tiny sets."""
import json

import numpy as np
import pytest
import torch

from cosparse.sw import commands, inputs
from cosparse.sw import train as tr
from cosparse.sw.data.synth import MANIFEST, MANIFEST_COLUMNS, read_manifest
from cosparse.sw.model import NetConfig

SMALL = NetConfig(conv1_channels=16, conv2_channels=16, hidden=64, n1=4, n2=4, n3=8, n4=2)
#: clip -> (engine, split, SNR or "" for no noise)
CLIPS = {"yes/a_nohash_0.wav": ("espeak-ng", "testing", "3.00"),
         "yes/b_nohash_0.wav": ("espeak-ng", "testing", "7.50"),
         "no/c_nohash_0.wav": ("flite", "testing", "24.99"),
         "no/d_nohash_0.wav": ("flite", "testing", ""),
         "up/e_nohash_0.wav": ("flite", "testing", "45.00"),
         "up/f_nohash_0.wav": ("espeak-ng", "train", "30.00")}


def _manifest(root):
    rows = ["\t".join(MANIFEST_COLUMNS)]
    rows += ["\t".join((clip, engine, "v", clip[3], split, snr))
             for clip, (engine, split, snr) in CLIPS.items()]
    (root / MANIFEST).write_text("\n".join(rows) + "\n")
    return read_manifest(root)


def test_breakdown_counts_each_band_and_engine(tmp_path):
    manifest = _manifest(tmp_path)
    names = [c for c in CLIPS if CLIPS[c][1] == "testing"] + ["_background_noise_/hum.wav@0x0.5"]
    labels = np.array([0, 0, 1, 1, 2, 10])
    golden = np.array([0, 1, 1, 0, 2, 10])  # wrong at 7.5 dB and on the clean clip
    floats = np.array([0, 1, 1, 1, 2, 3])
    report = commands.breakdown(names, labels, golden, floats, manifest)
    snr = report["by_snr"]
    assert snr["0-5"] == {"inputs": 1, "golden_accuracy": 1.0, "float_accuracy": 1.0,
                          "golden_agrees_with_float": 1.0}
    assert snr["5-10"]["golden_accuracy"] == 0.0 and snr["20-25"]["inputs"] == 1
    assert snr["40-45"]["inputs"] == 1  # 45 dB itself is in the top band
    assert snr["clean"]["inputs"] == 1 and snr["clean"]["golden_accuracy"] == 0.0
    assert snr["clean"]["float_accuracy"] == 1.0
    assert snr["silence"]["inputs"] == 1 and snr["silence"]["float_accuracy"] == 0.0
    assert sum(snr[b]["inputs"] for b in snr) == len(names)
    assert report["by_snr_range"]["5-25"]["inputs"] == 2
    assert report["by_snr_range"]["20-45+clean"]["inputs"] == 3
    engines = report["by_engine"]
    assert set(engines) == {"espeak-ng", "flite"}
    assert engines["flite"]["held_out"] and not engines["espeak-ng"]["held_out"]
    assert engines["flite"]["all"]["inputs"] == 3
    assert engines["flite"]["all"]["golden_accuracy"] == pytest.approx(2 / 3)
    assert engines["espeak-ng"]["5-25"]["inputs"] == 1


def test_breakdown_refuses_a_manifest_of_other_clips(tmp_path):
    with pytest.raises(ValueError, match="clips.tsv lists none"):
        commands.breakdown(["go/x.wav"], np.array([9]), np.array([9]), np.array([9]),
                           _manifest(tmp_path))


def test_a_manifest_with_another_header_is_an_error(tmp_path):
    (tmp_path / MANIFEST).write_text("clip\tengine\n")
    with pytest.raises(ValueError, match="synthesise the data set again"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path / "absent") == {}


def test_evaluate_reports_the_breakdown_of_a_tiny_model(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 128, (32, 1, 32, 32), generator=g).to(torch.int8)
    y = torch.randint(0, 12, (32,), generator=g)
    tr.train(SMALL, out_dir=tmp_path / "run", epochs=1, batch_size=16, progress=False,
             threads=1, data={"train": (X, y), "validation": (X[:8], y[:8])})
    from cosparse.sw.export import export_model
    export_model(tr.load_checkpoint(tmp_path / "run" / "best.pt"), X[:16].numpy(),
                 tmp_path / "spec")
    from cosparse.sw import netspec
    spec = netspec.load(tmp_path / "spec")
    names = list(CLIPS)[:5]
    data = inputs.Inputs(X[:5].numpy(), y[:5].numpy(), names)
    report = commands.evaluate(spec, tmp_path / "run" / "best.pt", data,
                               manifest=_manifest(tmp_path))
    assert report["by_engine"]["espeak-ng"]["all"]["inputs"] == 2
    flite = report["by_engine"]["flite"]["all"]
    assert flite["inputs"] == 3 and 0 <= flite["golden_accuracy"] <= 1
    json.dumps(report)  # what --json prints
    commands._print_breakdown(report)
    out = capsys.readouterr().out
    assert "flite (held out)" in out and "5-25 dB" in out and "silence" in out
