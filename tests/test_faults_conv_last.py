"""A NetSpec whose last layer is a conv2d (issue 14): one class out of C*H*W, flat (C, H, W).

The golden model, ``cosparse golden`` and the driver's result layout all
read its logits as docs/netspec.md ("Output") says; the hardware generator
does not build one (its argmax takes one logit a cycle from a linear layer)
and every hardware command refuses it with :class:`NotBuiltInHardware`.
"""

import json

import numpy as np
import pytest

from cosparse.sw import golden, netspec
from cosparse.sw.cli import main
from cosparse.sw.netspec import Conv2d, InputSpec, NetSpec
from cosparse.sw.netspec.random import _packed


@pytest.fixture
def conv_last():
    rng = np.random.default_rng(7)
    first = _packed(rng, Conv2d, "conv1", dict(in_shape=(1, 6, 6), out_channels=3, kernel=3),
                    3, 9, 2, True, 0.05)
    head = _packed(rng, Conv2d, "head", dict(in_shape=(3, 4, 4), out_channels=2, kernel=2),
                   2, 12, 1, False, 0.05)
    classes = tuple(f"c{c}_y{y}_x{x}" for c in range(2) for y in range(3) for x in range(3))
    return NetSpec(name="conv-last", input=InputSpec(shape=(1, 6, 6)), layers=(first, head),
                   classes=classes)


def test_golden_predicts_one_class_of_c_h_w(conv_last):
    x = netspec.random_inputs(conv_last, 20, seed=3)
    result = golden.run(conv_last, x)
    maps = result.activations["head"]  # [B, C, H, W]
    assert result.logits.shape == (20, 18)
    np.testing.assert_array_equal(result.logits, maps.reshape(20, -1))
    np.testing.assert_array_equal(result.predictions, maps.reshape(20, -1).argmax(1))
    assert result.predictions.shape == (20,)


def test_cosparse_golden_on_a_conv_last_netspec(conv_last, tmp_path, capsys):
    folder = netspec.save(conv_last, tmp_path / "net")
    x = netspec.random_inputs(conv_last, 4, seed=1)
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", "--netspec", str(folder), "--features", str(tmp_path / "x.npy"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = golden.run(conv_last, x)
    assert [r["prediction"] for r in report["inputs"]] == \
        [conv_last.classes[p] for p in expected.predictions]
    assert [len(r["logits"]) for r in report["inputs"]] == [18] * 4
    assert main(["golden", "--netspec", str(folder), "--features", str(tmp_path / "x.npy")]) == 0


# ---- hardware and driver --------------------------------------------------------------------

def test_the_generator_refuses_a_conv_last_network_by_name(conv_last):
    from cosparse.hw.generate import generate
    from cosparse.hw.top import NotBuiltInHardware
    with pytest.raises(NotBuiltInHardware, match="'head': the last layer must be linear"):
        generate(conv_last)


@pytest.mark.parametrize("command", [
    ["generate", "--out", "{tmp}/gen"],
    ["simulate", "--features", "{tmp}/x.npy"],
    ["run", "--backend", "sim", "--features", "{tmp}/x.npy"],
])
def test_hardware_commands_refuse_a_conv_last_netspec_in_one_line(conv_last, tmp_path, capsys,
                                                                  command):
    """Refused when the design is planned, before any compiler runs: exit 2, one line."""
    folder = netspec.save(conv_last, tmp_path / "net")
    np.save(tmp_path / "x.npy", netspec.random_inputs(conv_last, 2, seed=1))
    args = [command[0], "--netspec", str(folder), "--no-progress",
            *(a.format(tmp=tmp_path) for a in command[1:])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the last layer must be linear in hardware" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_driver_result_records_of_a_conv_last_layout_decode_flat(conv_last):
    """A kernel record carries the C*H*W logits in flat (C, H, W) order and one class index:
    the driver's decoding gives the golden model's logits and prediction."""
    from cosparse.hw.kernel import regmap
    from cosparse.sw.driver import protocol

    x = netspec.random_inputs(conv_last, 5, seed=4)
    expected = golden.run(conv_last, x)
    layout = protocol.Layout.of(conv_last)
    assert layout.classes == 18
    index_bytes = regmap.result_bytes(18) - 4 * 18
    records = bytearray()
    for logits, prediction in zip(expected.logits, expected.predictions):
        record = logits.astype("<i4").tobytes() + int(prediction).to_bytes(index_bytes, "little")
        records += record.ljust(layout.record_stride, b"\0")
    logits, predictions = protocol.unpack_results(layout, records, len(x))
    np.testing.assert_array_equal(logits, expected.activations["head"].reshape(5, -1))
    np.testing.assert_array_equal(predictions, expected.predictions)
