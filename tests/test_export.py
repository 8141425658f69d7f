"""Quantise, pack and export: packing round trips, overlap errors, fixed point, whole export."""

import numpy as np
import pytest
import torch

from cosparse.sw import export, features, golden, netspec
from cosparse.sw.export import Precision, PackingError, export_model, fixed_point, pack, unpack
from cosparse.sw.model import GSCNet, NetConfig


@pytest.mark.parametrize("seed", range(10))
def test_pack_unpack_round_trips_exactly(seed):
    rng = np.random.default_rng(seed)
    out, fan_in, n = rng.integers(1, 40), rng.integers(1, 60), rng.integers(1, 9)
    weights, ids = netspec.random_packing(rng, int(out), int(fan_in), int(n), empty_fraction=0.2)
    dense = unpack(weights, ids, int(n), int(out))
    repacked, reids = pack(dense, int(n), support=unpack(np.ones_like(weights), ids, int(n),
                                                           int(out)) != 0)
    np.testing.assert_array_equal(repacked, weights)
    np.testing.assert_array_equal(reids, ids)
    np.testing.assert_array_equal(unpack(*pack(dense, int(n)), int(n), int(out)), dense)


def test_pack_names_overlapping_kernels():
    w = np.zeros((4, 5), np.int8)
    w[0, 1] = 3
    w[1, 1] = -2
    with pytest.raises(PackingError, match=r"kernels \[0, 1\] of group 0 overlap at fan-in position 1"):
        pack(w, 2)
    with pytest.raises(PackingError, match="lies outside kernel 0's support"):
        pack(w, 4, support=np.zeros_like(w, bool))
    with pytest.raises(PackingError, match="n must be an integer"):
        pack(w, 0)


def test_fixed_point_is_closest_and_in_range():
    real = np.array([0.0, 1e-9, 3.1e-3, 0.5, 1.0, 7.25, 1000.0])
    m, s = fixed_point(real)
    assert (m >= 0).all() and (m < 2 ** 16).all() and (s >= 0).all() and (s <= 62).all()
    approx = m / 2.0 ** s
    assert np.allclose(approx[1:], real[1:], rtol=2e-4)
    assert m[0] == 0


def _calibrated_model(config, seed=0):
    torch.manual_seed(seed)
    model = GSCNet(config)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 128, (64, 1, 32, 32)).astype(np.int8)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.from_numpy(features.dequantise_features(x)))
    return model.eval(), x


@pytest.mark.parametrize("dense", [False, True])
def test_export_writes_a_valid_netspec_that_follows_the_float_model(tmp_path, dense):
    config = NetConfig.dense_baseline() if dense else NetConfig()
    model, x = _calibrated_model(config)
    spec, quantised = export_model(model, x, tmp_path / "net", metadata={"test": True})
    loaded = netspec.load(tmp_path / "net")
    assert [l.kind for l in loaded.layers] == [l.kind for l in spec.layers]
    assert netspec.load_metadata(tmp_path / "net")["test"] is True
    if not dense:
        assert [l.k for l in spec.layers if l.kind == "kwta"] == [8, 8, 150]
        assert [l.n for l in spec.packed_layers] == [config.n1, config.n2, config.n3, config.n4]
    result = golden.run(loaded, x)
    with torch.no_grad():
        acts = model.forward_with_activations(torch.from_numpy(features.dequantise_features(x)))
    # The first layer sees the exact input: its integer output is the float one, requantised.
    conv1 = (result.activations["conv1"] * quantised[0].output_scale
             / 2 ** spec.layer("conv1").requant.frac_bits)
    reference = acts["bn1"].numpy()
    inside = np.abs(reference) < 127 * quantised[0].output_scale
    if dense:
        inside &= reference > 0
    assert np.abs(conv1 - reference)[inside].max() <= quantised[0].output_scale * 1.5  # output rounding + int8 weights
    logits = result.logits * quantised[-1].output_scale
    assert np.corrcoef(logits.ravel(), acts["fc2"].numpy().ravel())[0, 1] > 0.8


def test_export_packing_keeps_the_models_assignment(tmp_path):
    model, x = _calibrated_model(NetConfig())
    spec, _ = export_model(model, x)
    conv2 = spec.layer("conv2")
    ids = model.conv2.slot_kernel.numpy()
    np.testing.assert_array_equal(conv2.kernel_ids, np.where(ids < 0, 255, ids).astype(np.uint8))


@pytest.mark.parametrize("dense", [False, True])
def test_golden_follows_the_pytorch_model_with_int8_rounding(dense):
    """Exporter + golden against PyTorch clip by clip: fake_quant applies the same roundings."""
    from cosparse.sw.export.fake_quant import predict
    model, x = _calibrated_model(NetConfig.dense_baseline() if dense else NetConfig(), seed=3)
    spec, quantised = export_model(model, x)
    scales = [q.output_scale for q in quantised[:-1]]
    rng = np.random.default_rng(4)
    test = rng.integers(0, 128, (200, 1, 32, 32)).astype(np.int8)
    agree = (predict(model, test, scales) == golden.run(spec, test).predictions).mean()
    assert agree >= 0.99


def test_quant_sensitivity_script_matches_fake_quant_with_every_rounding():
    """scripts/quant_sensitivity.py's ablation forward: all on = fake_quant, all off = float."""
    import importlib.util
    from pathlib import Path

    from cosparse.sw.export.fake_quant import quantised_forward
    path = Path(__file__).resolve().parents[1] / "scripts" / "quant_sensitivity.py"
    spec = importlib.util.spec_from_file_location("quant_sensitivity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, x = _calibrated_model(NetConfig(), seed=5)
    _, quantised = export_model(model, x)
    scales = [q.output_scale for q in quantised[:-1]]
    model = model.double()
    inp = torch.from_numpy(features.dequantise_features(x[:16]).astype(np.float64))
    with torch.no_grad():
        torch.testing.assert_close(module.forward(model, inp, scales, [1] * 4, [1] * 3),
                                   quantised_forward(model, inp, scales, Precision.int8()))
        torch.testing.assert_close(module.forward(model, inp, scales, [0] * 4, [0] * 3), model(inp))


def test_default_precision_widens_the_first_layer_and_the_local_kwta_inputs():
    model, x = _calibrated_model(NetConfig())
    spec, _ = export_model(model, x)
    assert [l.weight_bits for l in spec.packed_layers] == [16, 8, 8, 8]
    assert spec.layer("conv1").weights.dtype == np.int16
    assert [l.requant.frac_bits for l in spec.packed_layers[:-1]] == [4, 4, 0]
    assert [l.frac_bits for l in spec.layers if l.kind == "kwta"] == [4, 4, 0]
    assert Precision.of(spec).resolve(None) == Precision(weight_bits={"conv1": 16, "conv2": 8,
                                                                      "fc1": 8, "fc2": 8},
                                                         frac_bits={"conv1": 4, "conv2": 4,
                                                                    "fc1": 0})
    int8, _ = export_model(model, x, precision=Precision.int8())
    assert all(l.weight_bits == 8 and l.weights.dtype == np.int8 for l in int8.packed_layers)
    assert all(l.frac_bits == 0 for l in int8.layers if l.kind == "kwta")
    # The dense baseline has ReLUs, no local k-WTA: the default gives it no fraction bits.
    dense, _ = export_model(*_calibrated_model(NetConfig.dense_baseline()))
    assert all(l.requant is None or l.requant.frac_bits == 0 for l in dense.packed_layers)


@pytest.mark.parametrize("weight_bits, frac_bits", [("conv1=12,fc1=4", "conv2=2,fc1=3"),
                                                    ("none", "none")])
def test_chosen_precision_is_exported_and_followed_by_fake_quant(weight_bits, frac_bits):
    from cosparse.sw.export.fake_quant import predict
    model, x = _calibrated_model(NetConfig(), seed=3)
    precision = Precision.parse(weight_bits, frac_bits)
    spec, quantised = export_model(model, x, precision=precision)
    assert Precision.of(spec).for_blocks(export.gsc_blocks(model)) == \
        precision.for_blocks(export.gsc_blocks(model))
    test = np.random.default_rng(4).integers(0, 128, (200, 1, 32, 32)).astype(np.int8)
    scales = [q.output_scale for q in quantised[:-1]]
    agree = (predict(model, test, scales, precision=precision)
             == golden.run(spec, test).predictions).mean()
    assert agree >= 0.99


@pytest.mark.parametrize("weight_bits, frac_bits, message", [
    ("conv9=16", None, r"weight_bits names \['conv9'\], which are not layers"),
    (None, "fc2=2", "frac_bits for 'fc2': its output goes to no k-WTA"),
    ("conv1:16", None, "'conv1:16' is not LAYER=BITS"),
    ("conv1=32", None, r"weight_bits of 'conv1' must be an integer in \[2, 16\], got 32"),
])
def test_bad_precision_is_named(weight_bits, frac_bits, message):
    model, x = _calibrated_model(NetConfig())
    with pytest.raises(ValueError, match=message):
        export_model(model, x, precision=Precision.parse(weight_bits, frac_bits))
