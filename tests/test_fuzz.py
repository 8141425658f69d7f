"""Property-based fuzzing (Hypothesis) of the NetSpec loader, the wav reader and the features
reader: whatever the bytes, the result is a named error or a correct result, never a traceback.

"Named error" means the project's own exception types: NetSpecError for a NetSpec, AudioError
for audio, ValueError / FileNotFoundError with a message naming the file for features. A
"correct result" is checked too: a NetSpec that loads validates, saves and reloads to the
same network and runs; features are int8 [1, 32, 32] codes in [0, 127].

CI runs a few hundred examples per property (profile "ci", the default). The thorough run,
10,000 examples per property (docs/netspec.md, "Fuzzing"):

    HYPOTHESIS_PROFILE=thorough python -m pytest -q -p no:cacheprovider tests/test_fuzz.py
"""

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cosparse.sw import features, golden, inputs, netspec
from cosparse.sw.netspec import NetSpecError, random_netspec

_COMMON = dict(deadline=None, derandomize=False, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=150, **_COMMON)
settings.register_profile("thorough", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---- NetSpec loader -------------------------------------------------------------------------

def _base(seed: int, widths: bool):
    spec = random_netspec(seed, widths=widths)
    with tempfile.TemporaryDirectory() as folder:
        netspec.save(spec, folder)
        doc = json.loads((Path(folder) / netspec.JSON_NAME).read_text())
        arrays = (Path(folder) / netspec.ARRAYS_NAME).read_bytes()
    return doc, arrays


BASES = [_base(seed, widths) for seed in range(4) for widths in (False, True)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["conv2d", "linear", "maxpool2d", "kwta", "local", "global", "half_up",
                       "lower_index", "int8", "int32", "arrays.npz", "../arrays.npz", "conv1"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8)


def _paths(value, prefix=()):
    """Every (path, container) in a JSON document, to pick a place to mutate."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_netspecs(draw):
    base, arrays = draw(st.sampled_from(BASES))
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add", "nudge"]))
        if not path:
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        elif action == "nudge" and isinstance(parent[key], int) and not isinstance(parent[key],
                                                                                   bool):
            parent[key] += draw(st.sampled_from([-1, 1, 0.5, -1000]))
    text = json.dumps(doc)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    if draw(st.integers(0, 4)) == 0:  # damage the arrays
        mode = draw(st.sampled_from(["truncate", "flip", "empty", "garbage"]))
        if mode == "truncate":
            arrays = arrays[:draw(st.integers(0, len(arrays)))]
        elif mode == "flip":
            position = draw(st.integers(0, len(arrays) - 1))
            arrays = arrays[:position] + bytes([arrays[position] ^ draw(st.integers(1, 255))]) \
                + arrays[position + 1:]
        elif mode == "empty":
            arrays = b""
        else:
            arrays = draw(st.binary(max_size=64))
    return text, arrays


@given(mutated_netspecs())
def test_netspec_loader_never_tracebacks(case):
    text, arrays = case
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / netspec.JSON_NAME).write_text(text)
        (folder / netspec.ARRAYS_NAME).write_bytes(arrays)
        try:
            spec = netspec.load(folder)
        except NetSpecError as error:
            assert str(error)
            return
        spec.validate()
        again = netspec.load(netspec.save(spec, folder / "again"))
        assert [l.name for l in again.layers] == [l.name for l in spec.layers]
        x = netspec.random_inputs(spec, 2, seed=0)
        np.testing.assert_array_equal(golden.run(spec, x).logits, golden.run(again, x).logits)


# ---- wav reader -----------------------------------------------------------------------------

@st.composite
def wav_files(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=256))
    rate = draw(st.sampled_from([16000, 16000, 8000, 22050, 44100]))
    channels = draw(st.integers(1, 3))
    subtype = draw(st.sampled_from(["PCM_16", "PCM_U8", "PCM_24", "FLOAT", "DOUBLE"]))
    frames = draw(st.integers(0, 20000))
    kind = draw(st.sampled_from(["noise", "zeros", "tone", "special", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "noise":
        audio = rng.uniform(-1, 1, (frames, channels)) * draw(st.sampled_from([1, 1e-3, 1e-9]))
    elif kind == "zeros":
        audio = np.zeros((frames, channels))
    elif kind == "tone":
        audio = np.sin(np.arange(frames) / 7.0)[:, None].repeat(channels, 1)
    elif kind == "special":
        audio = rng.choice([0.0, np.nan, np.inf, -np.inf, 1.0, -1.0], (frames, channels))
    else:
        audio = rng.uniform(-1e30, 1e30, (frames, channels))
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype=subtype, format="WAV")
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "flip" and data:
        position = draw(st.integers(0, min(len(data) - 1, 80)))
        data = data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) \
            + data[position + 1:]
    return data


@given(wav_files(), st.booleans())
def test_wav_reader_never_tracebacks(data, convert):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        path.write_bytes(data)
        try:
            x = features.wav_to_features(path, convert=convert)
        except features.AudioError as error:
            assert str(path) in str(error)
            return
        assert x.dtype == np.int8 and x.shape == features.FEATURE_SHAPE
        assert features.QMIN <= x.min() and x.max() <= features.QMAX


# ---- features reader ------------------------------------------------------------------------

@st.composite
def npy_files(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=256))
    dtype = draw(st.sampled_from(["i1", "u1", "<i2", ">i4", "<i8", "<f4", ">f8", "?", "<c8",
                                  "U3"]))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 8]), max_size=5)))
    if draw(st.booleans()):
        shape = draw(st.sampled_from([(2, 1, 8, 8), (1, 8, 8), (3, 8, 8), (1, 1, 8, 8)]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.integers(-300, 300, shape)
    if draw(st.booleans()):
        values = rng.integers(0, 128, shape)
    array = values.astype(dtype)
    if np.dtype(dtype).kind == "f" and draw(st.booleans()) and array.size:
        array.flat[0] = draw(st.sampled_from([np.nan, np.inf, 0.5, 1e300]))
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "header"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "flip":
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) \
            + data[position + 1:]
    elif damage == "header":
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {
            "descr": np.dtype(dtype).str, "fortran_order": draw(st.booleans()),
            "shape": tuple(draw(st.lists(st.integers(0, 10 ** 12), max_size=4)))})
        data = header.getvalue() + data[len(header.getvalue()):]
    return data


SPEC_8X8 = next(s for s in map(random_netspec, range(200)) if s.input.shape == (1, 8, 8))


@given(npy_files())
def test_features_reader_never_tracebacks(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.npy"
        path.write_bytes(data)
        try:
            loaded = inputs.from_features(path, input_shape=SPEC_8X8.input.shape)
        except ValueError as error:
            assert str(path) in str(error)
            return
        assert loaded.x.ndim == 4 and len(loaded.x) >= 1
        try:
            x = golden.validate_inputs(SPEC_8X8, loaded.x)
        except ValueError as error:
            assert str(error)
            return
        assert x.dtype == np.int8 and x.shape[1:] == SPEC_8X8.input.shape
        assert x.min() >= SPEC_8X8.input.qmin and x.max() <= SPEC_8X8.input.qmax
