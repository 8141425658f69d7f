"""Export of any sequential sparse net through the public API (cosparse.export)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cosparse
from cosparse.sw import assets, features, golden, netspec
from cosparse.sw.export import ExportError, Precision, gsc_blocks, model_blocks
from cosparse.sw.model import CompSparseConv2d, CompSparseLinear, KWinners2d

sys.path.insert(0, str(Path(__file__).parent))
from _torch_nets import (check_golden_follows_pytorch, random_sequential,  # noqa: E402
                         train_a_few_steps)


def test_the_shipped_gsc_model_exports_to_the_shipped_netspec(tmp_path):
    """The generic exporter (torch.fx on GSCNet) reproduces the shipped NetSpec byte for byte,
    from the shipped checkpoint and the output scales its export recorded."""
    from cosparse.sw.train import load_checkpoint
    shipped = netspec.load(assets.DEFAULT_NETSPEC)
    meta = netspec.load_metadata(assets.DEFAULT_NETSPEC)
    scales = [meta["scales"][layer.name]["output"] for layer in shipped.packed_layers[:-1]]
    model = load_checkpoint(assets.DEFAULT_CHECKPOINT)
    assert [(b.name, b.layer, b.bn, b.pool, b.activation, b.output_stage) for b in
            model_blocks(model)] == [(b.name, b.layer, b.bn, b.pool, b.activation,
                                      b.output_stage) for b in gsc_blocks(model)]
    cosparse.export(model, None, out=tmp_path / "net", name=shipped.name, output_scales=scales,
                    precision=Precision(**meta["precision"]))
    ours = json.loads((tmp_path / "net" / netspec.JSON_NAME).read_text())
    theirs = json.loads((assets.DEFAULT_NETSPEC / netspec.JSON_NAME).read_text())
    ours.pop("metadata"), theirs.pop("metadata")
    # The features module has described digital silence since the shipped export.
    # NetSpec version 3 (the shipped one is 2) spells out each conv2d's stride and padding.
    assert (ours.pop("version"), theirs.pop("version")) == (3, 2)
    for layer in ours["layers"]:
        if layer["kind"] == "conv2d":
            assert (layer.pop("stride"), layer.pop("padding")) == (1, 0)
    ours_quant, theirs_quant = ours["input"].pop("quant"), theirs["input"].pop("quant")
    assert ours_quant == features.input_quant_spec()
    assert {k: v for k, v in ours_quant.items() if k != "digital_silence"} == theirs_quant
    assert ours == theirs
    with np.load(tmp_path / "net" / netspec.ARRAYS_NAME) as a, \
            np.load(assets.DEFAULT_NETSPEC / netspec.ARRAYS_NAME) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.parametrize("seed, strided", [(seed, False) for seed in range(20)]
                         + [(seed, True) for seed in range(100, 112)])
def test_random_sequential_nets_export_and_golden_follows_pytorch(seed, strided):
    """Random nets, trained a few steps: the golden model's logits are PyTorch's with the
    exporter's roundings (fake_quant), up to the 16-bit requantisation multipliers."""
    model, shape = random_sequential(seed, strided=strided)
    if strided:
        convs = [m for m in model if isinstance(m, CompSparseConv2d)]
        assert (convs[0].stride, convs[0].padding) != (1, 0)
    rng = np.random.default_rng(seed)
    signed = bool(seed % 2)
    low = -128 if signed else 0
    train_x = rng.integers(low, 128, (32, *shape)).astype(np.int8)
    train_a_few_steps(model, torch.from_numpy(train_x.astype(np.float32) / 127), seed=seed)
    calibration, scale = cosparse.quantise_inputs(train_x.astype(np.float64) / 127)
    spec = cosparse.export(model, calibration, input_scale=scale, name=f"random{seed}")
    names = [name for name, _ in model.named_children()]
    assert all(layer.name.startswith("layer_") and layer.name[6:] in names
               for layer in spec.layers)
    x = rng.integers(low, 128, (100, *shape)).astype(np.int8)
    check_golden_follows_pytorch(model, spec, calibration, scale, x)


def _net(*layers):
    return nn.Sequential(*layers).eval()


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = CompSparseLinear(4, 4, 2)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x) + x


class _Traced(nn.Module):
    """Not a Sequential: its forward is traced with torch.fx."""

    def __init__(self):
        super().__init__()
        self.conv = CompSparseConv2d(1, 4, 3, 2)
        self.kwta = KWinners2d(4, 0.5)
        self.head = CompSparseLinear(4 * 4 * 4, 3, 1)

    def forward(self, x):
        return self.head(torch.flatten(self.kwta(self.conv(x)), 1))


def test_a_traced_module_exports_with_its_module_names():
    x = np.random.default_rng(0).integers(0, 128, (8, 1, 6, 6)).astype(np.int8)
    spec = cosparse.export(_Traced().eval(), x, input_scale=1 / 127, classes="abc")
    assert [layer.name for layer in spec.layers] == ["conv", "kwta", "head"]
    assert spec.classes == ("a", "b", "c")


@pytest.mark.parametrize("model, message", [
    (_net(CompSparseLinear(36, 4, 2), nn.Dropout()), r"'1': Dropout is not supported"),
    (_net(nn.ReLU(), nn.Flatten(), CompSparseLinear(36, 4, 2)), r"'0': ReLU at the start"),
    (_net(CompSparseConv2d(1, 4, 3, 2), KWinners2d(4, 0.5), nn.MaxPool2d(2), nn.Flatten(),
          CompSparseLinear(16, 3, 1)), r"'2': MaxPool2d after the k-WTA of 'layer_0'"),
    (_net(CompSparseConv2d(1, 4, 3, 2), nn.MaxPool2d(2, stride=1), nn.Flatten(),
          CompSparseLinear(36, 3, 1)), r"'1': only MaxPool2d\(k\) with stride k"),
    (_net(nn.Flatten(), CompSparseLinear(36, 4, 2), nn.ReLU()),
     r"'layer_1': its ReLU follows the last layer"),
    (_net(nn.Flatten(), CompSparseLinear(36, 8, 2), KWinners2d(8, 0.5),
          CompSparseLinear(8, 2, 1)), r"'2': KWinners2d after 'layer_1', a linear layer"),
    (_net(CompSparseConv2d(1, 4, 3, 2), nn.BatchNorm1d(4)), r"'1': BatchNorm1d after 'layer_0'"),
    (_Branchy(), r"'add': not a straight chain"),
    (nn.Conv2d(1, 2, 3), r"^Conv2d is not supported"),
])
def test_unsupported_models_are_refused_naming_the_module(model, message):
    x = np.zeros((2, 1, 6, 6), np.int8)
    with pytest.raises(ExportError, match=message):
        cosparse.export(model, x, input_scale=1 / 127)


def test_bad_export_arguments_are_named():
    model = _net(nn.Flatten(), CompSparseLinear(36, 3, 1))
    x = np.zeros((2, 1, 6, 6), np.int8)
    with pytest.raises(ValueError, match="input_scale is needed"):
        cosparse.export(model, x)
    with pytest.raises(ValueError, match="2 class names for 3 outputs"):
        cosparse.export(model, x, input_scale=0.1, classes=["a", "b"])
    with pytest.raises(ValueError, match="calibration must be integer inputs"):
        cosparse.export(model, x.astype(np.float32), input_scale=0.1)


def _strided_conv_spec(seed, stride, padding):
    rng = np.random.default_rng(seed)
    c, h, w, out, k = (int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9)),
                       int(rng.integers(1, 7)), int(rng.integers(1, 4)))
    padding = min(padding, k - 1)
    weights = rng.integers(-127, 128, (out, c * k * k)).astype(np.int8)
    weights[rng.random(weights.shape) < 0.3] = 0
    layer = netspec.Conv2d(name="conv", in_shape=(c, h, w), out_channels=out, kernel=k,
                           stride=stride, padding=padding, n=1, weights=weights,
                           kernel_ids=np.zeros(weights.shape, np.uint8),
                           bias=rng.integers(-1000, 1000, out).astype(np.int32), requant=None)
    spec = netspec.NetSpec(name="strided", input=netspec.InputSpec(shape=(c, h, w), qmin=-128),
                           layers=(layer,),
                           classes=tuple(map(str, range(np.prod(layer.out_shape)))))
    return spec, layer


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0), (2, 1), (3, 2)])
def test_golden_conv2d_with_stride_and_padding_is_pytorchs(seed, stride, padding):
    """Bit-exact: the golden conv2d (and its useful-MAC count) against torch's conv2d on the
    same integers, in float64 (every value exact)."""
    spec, layer = _strided_conv_spec(seed, stride, padding)
    x = netspec.random_inputs(spec, 5, seed=seed)
    x[np.random.default_rng(seed).random(x.shape) < 0.5] = 0
    k, pad = layer.kernel, layer.padding
    weight = torch.from_numpy(layer.dense_weight().astype(np.float64)).view(-1, x.shape[1], k, k)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), weight,
                                          torch.from_numpy(layer.bias.astype(np.float64)),
                                          stride=layer.stride, padding=pad)
    np.testing.assert_array_equal(golden.conv2d(x, layer), expected.numpy().astype(np.int64))
    assert golden.conv2d(x, layer).shape[1:] == layer.out_shape
    ones = torch.ones(1, x.shape[1], k, k, dtype=torch.float64)
    reached = torch.nn.functional.conv2d(torch.from_numpy((x != 0).astype(np.float64)), ones,
                                         stride=layer.stride, padding=pad)
    counted = reached.sum(dim=(1, 2, 3)).numpy().astype(np.int64) * layer.groups
    np.testing.assert_array_equal(golden.useful_macs(x, layer), counted)


def test_stride_and_padding_round_trip_and_old_versions_refuse_them(tmp_path):
    spec, _ = _strided_conv_spec(0, 2, 1)
    loaded = netspec.load(netspec.save(spec, tmp_path / "net"))
    assert (loaded.layers[0].stride, loaded.layers[0].padding) == (2, spec.layers[0].padding)
    np.testing.assert_array_equal(golden.run(loaded, netspec.random_inputs(spec, 3)).logits,
                                  golden.run(spec, netspec.random_inputs(spec, 3)).logits)
    with pytest.raises(netspec.NetSpecError, match="stride and padding need NetSpec version 3"):
        netspec.NetSpec(name="old", input=spec.input, layers=spec.layers, classes=spec.classes,
                        version=2)


def test_the_hardware_generator_builds_a_strided_padded_conv(tmp_path):
    """generate (API and command) builds strided and padded convolutions (simulated bit-exact
    in tests/sim/test_sim_stride.py); the cycle model counts their reached tiles."""
    spec = netspec.random_netspec(6, strided=True)
    assert [(layer.stride, layer.padding) for layer in spec.packed_layers[:2]] == [(2, 1),
                                                                                   (2, 0)]
    summary = cosparse.generate(spec, tmp_path / "hw")
    assert Path(summary["verilog"]).stat().st_size > 0 and summary["initiation_interval"] > 0
    folder = netspec.save(spec, tmp_path / "net")
    from cosparse.sw.cli import main
    assert main(["generate", "--netspec", str(folder), "--out", str(tmp_path / "o")]) == 0
