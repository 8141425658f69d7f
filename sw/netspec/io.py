"""Reading and writing a NetSpec: ``netspec.json`` plus ``arrays.npz`` in a folder.

Loading checks everything :mod:`.layers` checks, plus the file-level rules
(format tag, integer version, the type of every field, unknown fields, an
array file inside the folder holding each array once, missing or extra
arrays, informative fields that disagree with the layers) and names the
file, layer and field at fault. docs/netspec.md ("Validation") lists them.
"""

from __future__ import annotations

import json
import zipfile
from math import prod
from pathlib import Path

import numpy as np

from .layers import (FORMAT, KWTA, VERSIONS, Conv2d, InputSpec, Linear, MaxPool2d, NetSpec,
                     NetSpecError, Requant, check_layer_name)

__all__ = ["save", "load", "load_metadata", "JSON_NAME", "ARRAYS_NAME"]

JSON_NAME = "netspec.json"
ARRAYS_NAME = "arrays.npz"
_PACKED_ARRAYS = ("weights", "kernel_ids", "bias")
_REQUANT_ARRAYS = ("multiplier", "shift")


def _layer_to_json(layer, version: int) -> tuple[dict, dict]:
    """A layer's JSON object and arrays; version 1 has no ``weight_bits`` or ``frac_bits``."""
    doc = {"name": layer.name, "kind": layer.kind}
    widths = version >= 2
    arrays = {}
    if isinstance(layer, (Conv2d, Linear)):
        if isinstance(layer, Conv2d):
            doc.update(in_shape=list(layer.in_shape), out_channels=layer.out_channels,
                       kernel=layer.kernel)
            if version >= 3:
                doc.update(stride=int(layer.stride), padding=int(layer.padding))
        else:
            doc.update(in_features=layer.in_features, out_features=layer.out_features)
        doc.update(n=layer.n, groups=layer.groups, fan_in=layer.fan_in,
                   out_shape=list(layer.out_shape))
        if widths:
            doc["weight_bits"] = int(layer.weight_bits)
        if layer.pattern != "random":  # optional: files without structure stay as they were
            doc["pattern"] = layer.pattern
        for key in _PACKED_ARRAYS:
            arrays[f"{layer.name}.{key}"] = getattr(layer, key)
        if layer.requant is None:
            doc["requant"] = None
        else:
            doc["requant"] = {"rounding": "half_up", "out_min": layer.requant.out_min,
                              "out_max": layer.requant.out_max}
            if widths:
                doc["requant"]["frac_bits"] = int(layer.requant.frac_bits)
            arrays[f"{layer.name}.multiplier"] = layer.requant.multiplier
            arrays[f"{layer.name}.shift"] = layer.requant.shift
    elif isinstance(layer, MaxPool2d):
        doc.update(in_shape=list(layer.in_shape), size=layer.size, out_shape=list(layer.out_shape))
    elif isinstance(layer, KWTA):
        doc.update(in_shape=list(layer.in_shape), mode=layer.mode, k=layer.k,
                   tie_break="lower_index")
        if widths:
            doc["frac_bits"] = int(layer.frac_bits)
    return doc, arrays


def save(spec: NetSpec, folder, *, metadata: dict | None = None) -> Path:
    """Write ``spec`` to ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers, arrays = [], {}
    for layer in spec.layers:
        doc, layer_arrays = _layer_to_json(layer, spec.version)
        layers.append(doc)
        arrays.update(layer_arrays)
    doc = {
        "format": FORMAT, "version": spec.version, "name": spec.name,
        "classes": list(spec.classes),
        "input": {"shape": list(spec.input.shape), "dtype": "int8", "qmin": spec.input.qmin,
                  "qmax": spec.input.qmax, "quant": spec.input.quant},
        "output": {"dtype": "int32", "size": spec.output_size, "argmax_tie_break": "lower_index"},
        "arrays": ARRAYS_NAME,
        "layers": layers,
        "metadata": metadata or {},
    }
    (folder / JSON_NAME).write_text(json.dumps(doc, indent=2) + "\n")
    np.savez_compressed(folder / ARRAYS_NAME, **arrays)
    return folder


_MISSING = object()
#: Fields of each JSON object: required, and optional (with a default or informative).
_TOP_REQUIRED = ("format", "version", "classes", "input", "layers")
_TOP_OPTIONAL = ("name", "output", "arrays", "metadata")
_INPUT_FIELDS = (("shape",), ("dtype", "qmin", "qmax", "quant"))
_OUTPUT_FIELDS = ((), ("dtype", "size", "argmax_tie_break"))
_REQUANT_FIELDS = ((), ("rounding", "out_min", "out_max", "frac_bits"))
_LAYER_FIELDS = {
    "conv2d": (("name", "kind", "in_shape", "out_channels", "kernel", "n", "requant"),
               ("weight_bits", "groups", "fan_in", "out_shape", "stride", "padding", "pattern")),
    "linear": (("name", "kind", "in_features", "out_features", "n", "requant"),
               ("weight_bits", "groups", "fan_in", "out_shape", "pattern")),
    "maxpool2d": (("name", "kind", "in_shape", "size"), ("out_shape",)),
    "kwta": (("name", "kind", "in_shape", "mode", "k"), ("tie_break", "frac_bits", "out_shape")),
}
#: Fields version 1 files do not have (NetSpec version 2 added them).
_VERSION_2_FIELDS = ("weight_bits", "frac_bits")
#: Fields version 1 and 2 files do not have (NetSpec version 3 added them).
_VERSION_3_FIELDS = ("stride", "padding")
_ZIP_MAGIC = b"PK\x03\x04"
#: Most bytes the arrays of one NetSpec may unpack to (the default model's: about 5 MB).
MAX_ARRAY_BYTES = 1 << 31


def _object(value, where: str, required, optional) -> dict:
    """``value`` as a JSON object holding every required field and nothing unknown."""
    if not isinstance(value, dict):
        raise NetSpecError(f"{where}: must be a JSON object, got {_show(value)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise NetSpecError(f"{where}: unknown field{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(map(repr, unknown))} (allowed: "
                           f"{', '.join(list(required) + list(optional))})")
    for key in required:
        if key not in value:
            raise NetSpecError(f"{where}: missing field {key!r}")
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(doc: dict, key: str, where: str, default=_MISSING) -> int:
    """An integer field (JSON number without fraction or exponent; not a boolean)."""
    if key not in doc and default is not _MISSING:
        return default
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise NetSpecError(f"{where}: {key} must be an integer, got {_show(value)}")
    return value


def _str(doc: dict, key: str, where: str, default=_MISSING) -> str:
    if key not in doc and default is not _MISSING:
        return default
    value = doc[key]
    if not isinstance(value, str) or not value:
        raise NetSpecError(f"{where}: {key} must be a non-empty string, got {_show(value)}")
    return value


def _shape(doc: dict, key: str, where: str, lengths=(3,)) -> tuple:
    value = doc[key]
    if (not isinstance(value, list) or len(value) not in lengths
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                       for d in value)):
        raise NetSpecError(f"{where}: {key} must be a list of "
                           f"{' or '.join(map(str, lengths))} positive integers, "
                           f"got {_show(value)}")
    return tuple(value)


def _constant(doc: dict, key: str, where: str, allowed: str, what: str):
    """A field whose only allowed value is ``allowed`` (an enumeration of one)."""
    if key in doc and doc[key] != allowed:
        raise NetSpecError(f"{where}: {key} {_show(doc[key])} is not supported "
                           f"(only {allowed!r}){what}")


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
    """Read one .npy member's header and refuse it if it promises more than the member holds.

    A damaged header can claim any shape; checking it first keeps it from
    allocating memory the file does not hold.
    """
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f".npy format version {version} is not supported")
        shape, _, dtype = read(member)
    needed = prod(shape) * dtype.itemsize
    if needed > info.file_size:
        raise ValueError(f"member {info.filename!r} promises shape {list(shape)} "
                         f"({needed:,} bytes) but holds {info.file_size:,} bytes")


class _Arrays:
    """The npz contents, handing each key out once so leftovers can be reported."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise NetSpecError(f"{path}: array file not found (a NetSpec folder holds "
                               f"{JSON_NAME} and {ARRAYS_NAME})")
        try:
            with open(path, "rb") as handle:
                magic = handle.read(4)
            if magic != _ZIP_MAGIC:
                raise NetSpecError(f"{path}: not a .npz file (a zip archive of .npy arrays, "
                                   f"as numpy.savez writes; this file is "
                                   f"{'empty' if not magic else 'something else'})")
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                names = [i.filename[:-4] if i.filename.endswith(".npy") else i.filename
                         for i in infos]
                duplicate = sorted({n for n in names if names.count(n) > 1})
                if duplicate:
                    raise NetSpecError(f"{path}: holds array {duplicate[0]!r} more than once; "
                                       f"each array must be stored once")
                total = sum(info.file_size for info in infos)
                if total > MAX_ARRAY_BYTES:
                    raise NetSpecError(f"{path}: unpacks to {total:,} bytes, more than the "
                                       f"{MAX_ARRAY_BYTES:,} a NetSpec's arrays may hold")
                for info in infos:
                    _check_member(archive, info, path)
            with np.load(path, allow_pickle=False) as npz:
                self._arrays = {key: npz[key] for key in npz.files}
        except NetSpecError:
            raise
        except Exception as error:  # noqa: BLE001 - damaged archives raise zlib.error,
            # struct.error, tokenize.TokenError, SyntaxError (numpy's header parser), ...:
            # whatever the damage, the answer is the same named error
            raise NetSpecError(f"{path}: not a readable .npz file "
                               f"({type(error).__name__}: {error})") from None
        self.path = path
        self._used = set()

    def take(self, key: str, where: str) -> np.ndarray:
        if key not in self._arrays:
            raise NetSpecError(f"{where}: array {key!r} is missing from {self.path.name}")
        self._used.add(key)
        return self._arrays[key]

    def check_all_used(self):
        extra = sorted(set(self._arrays) - self._used)
        if extra:
            raise NetSpecError(f"{self.path.name}: arrays {extra} belong to no layer")


def _check_informative(doc, layer, where):
    for key in ("groups", "fan_in", "out_shape"):
        if key in doc:
            actual = getattr(layer, key)
            stated = tuple(doc[key]) if isinstance(doc[key], list) else doc[key]
            if stated != actual or isinstance(doc[key], bool):
                raise NetSpecError(f"{where}: {key} is {_show(doc[key])} but the layer's "
                                   f"parameters give {actual!r}")


def _requant_from_json(doc, arrays: _Arrays, name: str, where: str):
    if doc is None:
        return None
    where = f"{where} requant"
    doc = _object(doc, where, *_REQUANT_FIELDS)
    _constant(doc, "rounding", where, "half_up", "")
    return Requant(multiplier=arrays.take(f"{name}.multiplier", where),
                   shift=arrays.take(f"{name}.shift", where),
                   out_min=_int(doc, "out_min", where, -128),
                   out_max=_int(doc, "out_max", where, 127),
                   frac_bits=_int(doc, "frac_bits", where, 0))


def _layer_from_json(doc, arrays: _Arrays, index: int, version: int):
    if not isinstance(doc, dict):
        raise NetSpecError(f"layers[{index}]: must be a JSON object, got {_show(doc)}")
    for key in ("name", "kind"):
        if key not in doc:
            raise NetSpecError(f"layers[{index}]: missing field {key!r}")
    name = _str(doc, "name", f"layers[{index}]")
    check_layer_name(name, f"layers[{index}]")
    kind = doc["kind"]
    where = f"layer {name!r} ({kind})"
    if not isinstance(kind, str) or kind not in _LAYER_FIELDS:
        raise NetSpecError(f"{where}: unknown layer kind {_show(kind)} (expected conv2d, linear, "
                           f"maxpool2d or kwta)")
    _object(doc, where, *_LAYER_FIELDS[kind])
    if version == 1:
        requant_doc = doc.get("requant") if isinstance(doc.get("requant"), dict) else {}
        used = [key for key in _VERSION_2_FIELDS if key in doc or key in requant_doc]
        if used:
            raise NetSpecError(f"{where}: fields weight_bits and frac_bits need NetSpec "
                               f"version 2; this file says version 1 and has {used[0]!r}")
    if version < 3:
        used = [key for key in _VERSION_3_FIELDS if key in doc]
        if used:
            raise NetSpecError(f"{where}: fields stride and padding need NetSpec version 3; "
                               f"this file says version {version} and has {used[0]!r}")
    if kind in ("conv2d", "linear"):
        packed = {key: arrays.take(f"{name}.{key}", where) for key in _PACKED_ARRAYS}
        common = dict(name=name, n=_int(doc, "n", where),
                      requant=_requant_from_json(doc["requant"], arrays, name, where),
                      weight_bits=_int(doc, "weight_bits", where, 8),
                      pattern=_str(doc, "pattern", where, "random"), **packed)
        if kind == "conv2d":
            layer = Conv2d(in_shape=_shape(doc, "in_shape", where),
                           out_channels=_int(doc, "out_channels", where),
                           kernel=_int(doc, "kernel", where),
                           stride=_int(doc, "stride", where, 1),
                           padding=_int(doc, "padding", where, 0), **common)
        else:
            layer = Linear(in_features=_int(doc, "in_features", where),
                           out_features=_int(doc, "out_features", where), **common)
    elif kind == "maxpool2d":
        layer = MaxPool2d(name=name, size=_int(doc, "size", where),
                          in_shape=_shape(doc, "in_shape", where))
    else:
        _constant(doc, "tie_break", where, "lower_index", "")
        layer = KWTA(name=name, mode=doc["mode"], k=_int(doc, "k", where),
                     in_shape=_shape(doc, "in_shape", where, (1, 3)),
                     frac_bits=_int(doc, "frac_bits", where, 0))
    layer.validate()
    _check_informative(doc, layer, where)
    return layer


def _arrays_path(doc: dict, folder: Path, where: str) -> Path:
    """The array file: a plain file name inside the NetSpec folder (default arrays.npz)."""
    name = _str(doc, "arrays", where, ARRAYS_NAME)
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise NetSpecError(f"{where}: arrays {_show(name)} must be the name of a file in the "
                           f"NetSpec folder (no directories; default {ARRAYS_NAME!r})")
    path = folder / name
    if path.is_symlink() and path.resolve().parent != folder.resolve():
        raise NetSpecError(f"{where}: arrays {name!r} is a link to {path.resolve()}, outside "
                           f"the NetSpec folder {folder}")
    return path


def _input_from_json(doc, where: str) -> InputSpec:
    where = f"{where} input"
    doc = _object(doc, where, *_INPUT_FIELDS)
    _constant(doc, "dtype", where, "int8", "; every input is an int8 feature code")
    quant = doc.get("quant", {})
    if not isinstance(quant, dict):
        raise NetSpecError(f"{where}: quant must be a JSON object, got {_show(quant)}")
    return InputSpec(shape=_shape(doc, "shape", where), qmin=_int(doc, "qmin", where, 0),
                     qmax=_int(doc, "qmax", where, 127), quant=quant)


def _check_output(doc, spec: NetSpec, where: str):
    """The informative ``output`` object, when present, must agree with the layers."""
    where = f"{where} output"
    doc = _object(doc, where, *_OUTPUT_FIELDS)
    _constant(doc, "dtype", where, "int32", "; the logits are int32")
    _constant(doc, "argmax_tie_break", where, "lower_index", "")
    if "size" in doc and _int(doc, "size", where) != spec.output_size:
        raise NetSpecError(f"{where}: size is {doc['size']} but the last layer gives "
                           f"{spec.output_size} outputs")


def load(folder) -> NetSpec:
    """Read and validate the NetSpec in ``folder`` (or the path of its netspec.json).

    Every rule is in docs/netspec.md ("Validation"); any violation raises
    :class:`NetSpecError` naming the file, the layer and the field.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / JSON_NAME
    if not path.is_file():
        raise NetSpecError(f"{path}: not found; a NetSpec folder holds {JSON_NAME} and "
                           f"{ARRAYS_NAME} (make one with `cosparse export`)")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise NetSpecError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise NetSpecError(f"{path}: cannot be read ({error})") from None
    where = str(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NetSpecError(f"{path}: 'format' must be {FORMAT!r}; this is not a cosparse NetSpec")
    _object(doc, where, _TOP_REQUIRED, _TOP_OPTIONAL)
    version = doc["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version not in VERSIONS:
        raise NetSpecError(f"{path}: version {_show(version)} is not supported (this cosparse "
                           f"reads the integer versions {', '.join(map(str, VERSIONS))}); "
                           f"re-export the model with `cosparse export`")
    name = _str(doc, "name", where, path.parent.name or "netspec")
    classes = doc["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise NetSpecError(f"{path}: classes must be a list of non-empty strings, got "
                           f"{_show(classes)}")
    if not isinstance(doc.get("metadata", {}), dict):
        raise NetSpecError(f"{path}: metadata must be a JSON object, got "
                           f"{_show(doc['metadata'])}")
    input_spec = _input_from_json(doc["input"], where)
    layers_doc = doc["layers"]
    if not isinstance(layers_doc, list):
        raise NetSpecError(f"{path}: layers must be a list of layer objects, got "
                           f"{_show(layers_doc)}")
    arrays = _Arrays(_arrays_path(doc, path.parent, where))
    layers = tuple(_layer_from_json(layer, arrays, i, version)
                   for i, layer in enumerate(layers_doc))
    arrays.check_all_used()
    spec = NetSpec(name=name, input=input_spec, layers=layers, classes=tuple(classes),
                   version=version)
    if "output" in doc:
        _check_output(doc["output"], spec, where)
    return spec


def load_metadata(folder) -> dict:
    """The free-form ``metadata`` object of a saved NetSpec (training provenance etc.)."""
    path = Path(folder)
    path = path / JSON_NAME if path.is_dir() else path
    return json.loads(path.read_text()).get("metadata", {})
