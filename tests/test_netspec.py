"""NetSpec: save/load round trip and every validation error on a broken file."""

import json

import numpy as np
import pytest

from cosparse.sw import netspec
from cosparse.sw.netspec import NetSpecError, random_netspec


def layer_doc(doc, kind):
    return next(l for l in doc["layers"] if l["kind"] == kind)


@pytest.mark.parametrize("widths", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_round_trip_is_exact(tmp_path, seed, widths):
    spec = random_netspec(seed, widths=widths)
    loaded = netspec.load(netspec.save(spec, tmp_path / "n", metadata={"seed": seed}))
    assert [l.name for l in loaded.layers] == [l.name for l in spec.layers]
    for a, b in zip(spec.packed_layers, loaded.packed_layers):
        for key in ("weights", "kernel_ids", "bias"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
            assert getattr(a, key).dtype == getattr(b, key).dtype
        np.testing.assert_array_equal(a.dense_weight(), b.dense_weight())
        assert a.weight_bits == b.weight_bits
        assert (a.requant and a.requant.frac_bits) == (b.requant and b.requant.frac_bits)
    assert [getattr(l, "frac_bits", None) for l in loaded.layers] == \
        [getattr(l, "frac_bits", None) for l in spec.layers]
    assert netspec.load_metadata(tmp_path / "n") == {"seed": seed}


def test_dense_weight_unpacks_kernel_ids():
    weights = np.array([[1, 2, 3, 4]], np.int8)
    ids = np.array([[1, 0, netspec.EMPTY_SLOT, 1]], np.uint8)
    weights[0, 2] = 0
    layer = netspec.Linear(name="l", n=2, weights=weights, kernel_ids=ids,
                           bias=np.zeros(2, np.int32), requant=None, in_features=4, out_features=2)
    np.testing.assert_array_equal(layer.dense_weight(), [[0, 2, 0, 0], [1, 0, 0, 4]])


BREAKAGES = {
    "wrong format": (lambda d: d.update(format="onnx"), None, "not a cosparse NetSpec"),
    "wrong version": (lambda d: d.update(version=7), None, "version 7 is not supported"),
    "missing field": (lambda d: layer_doc(d, "conv2d").pop("kernel"), None, "missing field 'kernel'"),
    "unknown kind": (lambda d: layer_doc(d, "maxpool2d").update(kind="avgpool"), None,
                     "unknown layer kind 'avgpool'"),
    "k too large": (lambda d: layer_doc(d, "kwta").update(k=10 ** 6), None, "is larger than the"),
    "k zero": (lambda d: layer_doc(d, "kwta").update(k=0), None, "k must be a positive integer"),
    "kwta mode": (lambda d: layer_doc(d, "kwta").update(mode="regional"), None,
                  "mode must be 'local' or 'global'"),
    "tie rule": (lambda d: layer_doc(d, "kwta").update(tie_break="random"), None,
                 "tie_break 'random' is not supported"),
    "rounding": (lambda d: layer_doc(d, "conv2d")["requant"].update(rounding="even"), None,
                 "rounding 'even' is not supported"),
    "shape mismatch": (lambda d: layer_doc(d, "kwta")["in_shape"].__setitem__(1, 99), None,
                       "does not match the previous output"),
    "informative groups": (lambda d: layer_doc(d, "conv2d").update(groups=999), None,
                           "groups is 999"),
    "class count": (lambda d: d["classes"].append("extra"), None, "class names for"),
    "duplicate name": (lambda d: d["layers"][1].update(name=d["layers"][0]["name"]), None,
                       "is used twice"),
    "missing array": (None, lambda a: a.pop("conv1.weights"), "array 'conv1.weights' is missing"),
    "extra array": (None, lambda a: a.update(stray=np.zeros(2)), "belong to no layer"),
    "wrong dtype": (None, lambda a: a.update({"conv1.weights": a["conv1.weights"].astype(np.int16)}),
                    "weights must have dtype int8"),
    "wrong shape": (None, lambda a: a.update({"conv1.bias": a["conv1.bias"][:-1]}),
                    "bias must have shape"),
    "kernel id out of range": (None, lambda a: a["conv1.kernel_ids"].__setitem__((0, 0), 200),
                               "is out of range"),
    "weight in empty slot": (None, lambda a: (a["conv1.kernel_ids"].__setitem__((0, 0), 255),
                                              a["conv1.weights"].__setitem__((0, 0), 5)),
                             "sits in an empty slot"),
    "multiplier range": (None, lambda a: a["conv1.multiplier"].__setitem__(0, 70000),
                         r"multiplier\[0\] = 70000 is outside"),
    "shift range": (None, lambda a: a["conv1.shift"].__setitem__(0, 63), r"shift\[0\] = 63 is outside"),
    "accumulator overflow": (None, lambda a: a["conv1.bias"].__setitem__(0, 2 ** 31 - 1),
                             "overflows int32"),
    "weight bits range": (lambda d: layer_doc(d, "conv2d").update(weight_bits=17), None,
                          r"weight_bits must be an integer in \[2, 16\], got 17"),
    "weight dtype for its bits": (lambda d: layer_doc(d, "conv2d").update(weight_bits=12), None,
                                  "weights must have dtype int16"),
    "weight too wide for its bits": (lambda d: layer_doc(d, "conv2d").update(weight_bits=4), None,
                                     "does not fit weight_bits = 4"),
    "frac bits range": (lambda d: layer_doc(d, "conv2d")["requant"].update(frac_bits=9), None,
                        r"requant.frac_bits must be an integer in \[0, 8\], got 9"),
    "frac bits without kwta": (lambda d: layer_doc(d, "kwta").update(frac_bits=3), None,
                               "frac_bits = 3 but its input has 0 fraction bits"),
    "kwta ignores frac bits": (lambda d: layer_doc(d, "conv2d")["requant"].update(frac_bits=2),
                               None, "but its input has 2 fraction bits|its input has 2 fraction"),
    "version 1 with widths": (lambda d: (d.update(version=1),
                                         layer_doc(d, "conv2d").update(weight_bits=16)),
                              lambda a: a.update({"conv1.weights":
                                                  a["conv1.weights"].astype(np.int16)}),
                              "need NetSpec version 2"),
}


@pytest.mark.parametrize("case", BREAKAGES)
def test_broken_file_names_the_problem(saved, case):
    _, folder, edit_json, edit_arrays = saved
    json_change, array_change, message = BREAKAGES[case]
    if json_change:
        edit_json(json_change)
    if array_change:
        edit_arrays(array_change)
    with pytest.raises(NetSpecError, match=message):
        netspec.load(folder)


def test_version_1_files_still_load_as_int8(saved, tmp_path):
    """A version 1 NetSpec (no weight_bits, no frac_bits) reads as 8-bit weights, no fractions."""
    spec, folder, edit_json, _ = saved
    def to_version_1(doc):
        doc["version"] = 1
        for layer in doc["layers"]:
            layer.pop("weight_bits", None), layer.pop("frac_bits", None)
            layer.pop("stride", None), layer.pop("padding", None)
            if layer.get("requant"):
                layer["requant"].pop("frac_bits")
    edit_json(to_version_1)
    loaded = netspec.load(folder)
    assert loaded.version == 1 and all(l.weight_bits == 8 for l in loaded.packed_layers)
    again = json.loads((netspec.save(loaded, tmp_path / "again") / netspec.JSON_NAME).read_text())
    assert again["version"] == 1 and "weight_bits" not in again["layers"][0]


def test_fraction_bits_may_reach_only_a_kwta():
    """A tensor with fraction bits must not feed a packed layer: its k-WTA rounds it first."""
    spec = next(s for s in (random_netspec(i, widths=True) for i in range(200))
                if any(l.kind == "kwta" and l.frac_bits for l in s.layers))
    index = next(i for i, l in enumerate(spec.layers) if l.kind == "kwta" and l.frac_bits)
    dropped = spec.layers[:index] + spec.layers[index + 1:]
    with pytest.raises(NetSpecError, match="fraction bits; a kwta with frac_bits"):
        netspec.NetSpec(name="x", input=spec.input, layers=dropped, classes=spec.classes)


def test_hidden_layer_without_requant_is_rejected(saved):
    spec, folder, edit_json, edit_arrays = saved
    def drop(arrays):
        arrays.pop("conv1.multiplier"), arrays.pop("conv1.shift")
    edit_arrays(drop)
    edit_json(lambda d: layer_doc(d, "conv2d").update(requant=None))
    with pytest.raises(NetSpecError, match="has no requant but is not the last layer"):
        netspec.load(folder)


def test_missing_folder_and_bad_json(tmp_path):
    with pytest.raises(NetSpecError, match="not found"):
        netspec.load(tmp_path / "nowhere")
    (tmp_path / netspec.JSON_NAME).write_text("{broken")
    with pytest.raises(NetSpecError, match="not valid JSON"):
        netspec.load(tmp_path)


def test_pool_must_divide_input():
    with pytest.raises(NetSpecError, match="not divisible by pool size 2"):
        netspec.MaxPool2d(name="p", in_shape=(4, 5, 6), size=2).validate()
