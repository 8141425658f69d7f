"""Fault injection on NetSpec loading (issue 14): every corruption is one named NetSpecError.

Each case breaks a saved random network in one way a user or a tool could,
and asserts the loader refuses it with a message naming the field, instead
of a traceback, a silently different network or a late error three tools on.
"""

import json
import os
import zipfile

import numpy as np
import pytest

from cosparse.sw import netspec
from cosparse.sw.netspec import NetSpecError, random_netspec


def kind(doc, name):
    return next(l for l in doc["layers"] if l["kind"] == name)


JSON_FAULTS = {
    # tracebacks before
    "classes is a number": (lambda d: d.update(classes=12), "classes must be a list"),
    "input is a number": (lambda d: d.update(input=5), "input: must be a JSON object"),
    "arrays is a number": (lambda d: d.update(arrays=5), "arrays must be a non-empty string"),
    "requant is a number": (lambda d: kind(d, "conv2d").update(requant=5),
                            "requant: must be a JSON object"),
    "qmin is a string": (lambda d: d["input"].update(qmin="0"), "qmin must be an integer"),
    "out_min is a string": (lambda d: kind(d, "conv2d")["requant"].update(out_min="a"),
                            "out_min must be an integer"),
    "out_min is fractional": (lambda d: kind(d, "conv2d")["requant"].update(out_min=-127.5),
                              "out_min must be an integer, got -127.5"),
    "layer name with a space": (lambda d: kind(d, "maxpool2d").update(name="pool 1"),
                                "layer name 'pool 1' is not allowed"),
    "layer name with a dot": (lambda d: kind(d, "maxpool2d").update(name="p.1"),
                              "layer name 'p.1' is not allowed"),
    "layer name is a number": (lambda d: kind(d, "maxpool2d").update(name=3),
                               "name must be a non-empty string"),
    "layers is an object": (lambda d: d.update(layers={}), "layers must be a list"),
    "layer is a list": (lambda d: d["layers"].__setitem__(0, []), "must be a JSON object"),
    "shape holds a float": (lambda d: d["input"].update(shape=[1, 8.0, 8]),
                            "shape must be a list of 3 positive integers"),
    "k is a boolean": (lambda d: kind(d, "kwta").update(k=True), "k must be an integer"),
    "n is a float": (lambda d: kind(d, "conv2d").update(n=2.0), "n must be an integer"),
    "kind is a list": (lambda d: kind(d, "maxpool2d").update(kind=[]),
                       "unknown layer kind \\[\\]"),
    "mode is a list": (lambda d: kind(d, "kwta").update(mode=["local"]),
                       "mode must be 'local' or 'global'"),
    "quant is a list": (lambda d: d["input"].update(quant=[]), "quant must be a JSON object"),
    "metadata is a list": (lambda d: d.update(metadata=[]), "metadata must be a JSON object"),
    "output is a list": (lambda d: d.update(output=[]), "output: must be a JSON object"),
    # silent wrong results before
    "conv2d stride, stale out_shape": (lambda d: kind(d, "conv2d").update(stride=2, padding=1),
                                       "out_shape is .* but the layer's parameters give"),
    "conv2d stride in version 2": (lambda d: d.update(version=2),
                                   "fields stride and padding need NetSpec version 3; this file "
                                   "says version 2"),
    "conv2d padding >= kernel": (lambda d: kind(d, "conv2d").update(padding=kind(d, "conv2d")
                                                                    ["kernel"]),
                                 "padding = .* must be from 0 to kernel - 1"),
    "unknown top-level field": (lambda d: d.update(extra=1), "unknown field 'extra'"),
    "unknown input field": (lambda d: d["input"].update(scale=2), "unknown field 'scale'"),
    "unknown requant field": (lambda d: kind(d, "conv2d")["requant"].update(zero_point=3),
                              "unknown field 'zero_point'"),
    "classes is a string": (lambda d: d.update(classes="abcdefghijkl"),
                            "classes must be a list"),
    "duplicate class names": (lambda d: d["classes"].__setitem__(1, d["classes"][0]),
                              "is used twice"),
    "version is a float": (lambda d: d.update(version=2.0), "version 2.0 is not supported"),
    "version is a string": (lambda d: d.update(version="2"), "version '2' is not supported"),
    "version is a boolean": (lambda d: d.update(version=True), "version True is not supported"),
    "input dtype float32": (lambda d: d["input"].update(dtype="float32"),
                            "dtype 'float32' is not supported"),
    "output dtype": (lambda d: d["output"].update(dtype="int8"), "dtype 'int8' is not supported"),
    "output size": (lambda d: d["output"].update(size=3), "size is 3 but the last layer"),
    "arrays outside the folder": (lambda d: d.update(arrays="../arrays.npz"),
                                  "must be the name of a file in the NetSpec folder"),
    "arrays absolute": (lambda d: d.update(arrays="/tmp/arrays.npz"),
                        "must be the name of a file in the NetSpec folder"),
    # misleading or late errors before
    "qmin fractional": (lambda d: d["input"].update(qmin=0.5), "qmin must be an integer, got 0.5"),
    "out_min above out_max": (lambda d: kind(d, "conv2d")["requant"].update(out_min=5, out_max=4),
                              "out_min <= out_max"),
    "version 1 with weight_bits 8": (lambda d: (d.update(version=1),
                                                kind(d, "conv2d").update(weight_bits=8)),
                                     "need NetSpec version 2"),
    "version 1 with kwta frac_bits 0": (lambda d: (d.update(version=1),
                                                   [l.pop("weight_bits", None)
                                                    for l in d["layers"]],
                                                   kind(d, "kwta").update(frac_bits=0)),
                                        "need NetSpec version 2"),
    "kwta in_shape of 2": (lambda d: kind(d, "kwta").update(in_shape=[2, 3]),
                           "in_shape must be a list of 1 or 3 positive integers"),
    "informative groups boolean": (lambda d: kind(d, "conv2d").update(groups=True), "groups is"),
}


@pytest.mark.parametrize("case", JSON_FAULTS)
def test_json_fault_is_named(saved, case):
    _, folder, edit, _ = saved
    change, message = JSON_FAULTS[case]
    edit(change)
    with pytest.raises(NetSpecError, match=message):
        netspec.load(folder)


def test_every_field_of_the_saved_file_is_known(saved):
    """save() writes only fields load() accepts, for both versions."""
    spec, folder, _, _ = saved
    assert netspec.load(folder).output_size == spec.output_size


def _arrays(folder):
    with np.load(folder / netspec.ARRAYS_NAME) as npz:
        return dict(npz)


def test_empty_array_file(saved):
    _, folder, _, _ = saved
    (folder / netspec.ARRAYS_NAME).write_bytes(b"")
    with pytest.raises(NetSpecError, match="not a .npz file .* this file is empty"):
        netspec.load(folder)


def test_text_file_as_array_file_is_not_blamed_on_pickles(saved):
    _, folder, _, _ = saved
    (folder / netspec.ARRAYS_NAME).write_text("conv1.weights = 1, 2, 3\n")
    with pytest.raises(NetSpecError, match="not a .npz file") as error:
        netspec.load(folder)
    assert "pickle" not in str(error.value)


def test_npy_as_array_file(saved):
    _, folder, _, _ = saved
    with open(folder / netspec.ARRAYS_NAME, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(NetSpecError, match="not a .npz file"):
        netspec.load(folder)


def test_truncated_array_file(saved):
    _, folder, _, _ = saved
    path = folder / netspec.ARRAYS_NAME
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(NetSpecError, match="not a readable .npz file"):
        netspec.load(folder)


def test_an_array_stored_twice_is_refused(saved):
    _, folder, _, _ = saved
    path = folder / netspec.ARRAYS_NAME
    arrays = _arrays(folder)
    with zipfile.ZipFile(path, "a") as archive, archive.open("conv1.bias.npy", "w") as member:
        np.lib.format.write_array(member, arrays["conv1.bias"] + 1)
    with pytest.raises(NetSpecError, match="holds array 'conv1.bias' more than once"):
        netspec.load(folder)


def test_big_endian_array_names_the_byte_order(saved):
    _, folder, _, _ = saved
    arrays = _arrays(folder)
    arrays["conv1.bias"] = arrays["conv1.bias"].astype(">i4")
    np.savez(folder / netspec.ARRAYS_NAME, **arrays)
    with pytest.raises(NetSpecError, match=r"int32 stored big-endian \(>i4\)"):
        netspec.load(folder)


def test_arrays_link_outside_the_folder_is_refused(saved, tmp_path):
    _, folder, edit, _ = saved
    outside = tmp_path / "elsewhere.npz"
    os.replace(folder / netspec.ARRAYS_NAME, outside)
    (folder / "linked.npz").symlink_to(outside)
    edit(lambda d: d.update(arrays="linked.npz"))
    with pytest.raises(NetSpecError, match="outside the NetSpec folder"):
        netspec.load(folder)


def test_arrays_other_name_inside_the_folder_loads(saved):
    spec, folder, edit, _ = saved
    os.replace(folder / netspec.ARRAYS_NAME, folder / "weights.npz")
    edit(lambda d: d.update(arrays="weights.npz"))
    assert netspec.load(folder).output_size == spec.output_size


def test_netspec_json_not_utf8(saved):
    _, folder, _, _ = saved
    (folder / netspec.JSON_NAME).write_bytes(b"\xff\xfe{}")
    with pytest.raises(NetSpecError, match="not valid JSON"):
        netspec.load(folder)


def test_in_memory_netspec_refuses_bad_names_and_classes():
    spec = random_netspec(1)
    with pytest.raises(NetSpecError, match="class name 'a' is used twice"):
        netspec.NetSpec(name="x", input=spec.input, layers=spec.layers,
                        classes=("a",) * len(spec.classes))
    with pytest.raises(NetSpecError, match="classes must be a tuple"):
        netspec.NetSpec(name="x", input=spec.input, layers=spec.layers, classes="ab")
    with pytest.raises(NetSpecError, match="qmin must be an integer"):
        netspec.InputSpec(shape=(1, 4, 4), qmin=0.5).validate()


def test_damaged_compressed_member_is_named(saved):
    """A flipped byte inside deflated data raised zlib.error (found by fuzzing)."""
    _, folder, _, _ = saved
    path = folder / netspec.ARRAYS_NAME
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    data = bytearray(path.read_bytes())
    local = info.header_offset  # the local header's own name and extra lengths
    name_length, extra_length = np.frombuffer(bytes(data[local + 26:local + 30]), "<u2")
    start = local + 30 + int(name_length) + int(extra_length)
    for offset in range(start + 2, start + 12):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(NetSpecError, match="not a readable .npz file"):
        netspec.load(folder)


def test_member_header_promising_more_than_it_holds(saved):
    _, folder, _, _ = saved
    path = folder / netspec.ARRAYS_NAME
    import io
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|i1", "fortran_order": False, "shape": (10 ** 10,)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("conv1.weights.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(NetSpecError, match="promises shape \\[10000000000\\]"):
        netspec.load(folder)
