"""Reading and writing a NetSpec: ``netspec.json`` plus ``arrays.npz`` in a folder.

Loading checks everything :mod:`.layers` checks, plus the file-level rules
(format tag, version, missing or extra arrays, informative fields that
disagree with the arrays) and names the file and key at fault.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .layers import (FORMAT, KWTA, VERSIONS, Conv2d, InputSpec, Linear, MaxPool2d, NetSpec,
                     NetSpecError, Requant)

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
        else:
            doc.update(in_features=layer.in_features, out_features=layer.out_features)
        doc.update(n=layer.n, groups=layer.groups, fan_in=layer.fan_in,
                   out_shape=list(layer.out_shape))
        if widths:
            doc["weight_bits"] = int(layer.weight_bits)
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


def _require(doc: dict, key: str, where: str):
    if key not in doc:
        raise NetSpecError(f"{where}: missing field {key!r}")
    return doc[key]


def _tuple(value, where, key):
    if not isinstance(value, list):
        raise NetSpecError(f"{where}: {key} must be a list of integers, got {value!r}")
    return tuple(value)


class _Arrays:
    """The npz contents, handing each key out once so leftovers can be reported."""

    def __init__(self, path: Path):
        try:
            with np.load(path, allow_pickle=False) as npz:
                self._arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise NetSpecError(f"{path}: array file not found (a NetSpec folder holds "
                               f"{JSON_NAME} and {ARRAYS_NAME})") from None
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise NetSpecError(f"{path}: not a readable .npz file ({error})") from None
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
            if stated != actual:
                raise NetSpecError(f"{where}: {key} is {doc[key]!r} but the layer's parameters "
                                   f"give {actual!r}")


def _layer_from_json(doc: dict, arrays: _Arrays, index: int):
    if not isinstance(doc, dict):
        raise NetSpecError(f"layers[{index}]: must be an object, got {doc!r}")
    name = _require(doc, "name", f"layers[{index}]")
    kind = _require(doc, "kind", f"layers[{index}]")
    where = f"layer {name!r} ({kind})"
    if kind in ("conv2d", "linear"):
        packed = {key: arrays.take(f"{name}.{key}", where) for key in _PACKED_ARRAYS}
        requant_doc = _require(doc, "requant", where)
        requant = None
        if requant_doc is not None:
            rounding = requant_doc.get("rounding", "half_up")
            if rounding != "half_up":
                raise NetSpecError(f"{where}: requant rounding {rounding!r} is not supported "
                                   f"(only 'half_up')")
            requant = Requant(multiplier=arrays.take(f"{name}.multiplier", where),
                              shift=arrays.take(f"{name}.shift", where),
                              out_min=requant_doc.get("out_min", -128),
                              out_max=requant_doc.get("out_max", 127),
                              frac_bits=requant_doc.get("frac_bits", 0))
        common = dict(name=name, n=_require(doc, "n", where), requant=requant,
                      weight_bits=doc.get("weight_bits", 8), **packed)
        if kind == "conv2d":
            layer = Conv2d(in_shape=_tuple(_require(doc, "in_shape", where), where, "in_shape"),
                           out_channels=_require(doc, "out_channels", where),
                           kernel=_require(doc, "kernel", where), **common)
        else:
            layer = Linear(in_features=_require(doc, "in_features", where),
                           out_features=_require(doc, "out_features", where), **common)
    elif kind == "maxpool2d":
        layer = MaxPool2d(name=name, size=_require(doc, "size", where),
                          in_shape=_tuple(_require(doc, "in_shape", where), where, "in_shape"))
    elif kind == "kwta":
        tie = doc.get("tie_break", "lower_index")
        if tie != "lower_index":
            raise NetSpecError(f"{where}: tie_break {tie!r} is not supported (only 'lower_index')")
        layer = KWTA(name=name, mode=_require(doc, "mode", where), k=_require(doc, "k", where),
                     in_shape=_tuple(_require(doc, "in_shape", where), where, "in_shape"),
                     frac_bits=doc.get("frac_bits", 0))
    else:
        raise NetSpecError(f"{where}: unknown layer kind {kind!r} (expected conv2d, linear, "
                           f"maxpool2d or kwta)")
    layer.validate()
    _check_informative(doc, layer, where)
    return layer


def load(folder) -> NetSpec:
    """Read and validate the NetSpec in ``folder`` (or the path of its netspec.json)."""
    path = Path(folder)
    if path.is_dir():
        path = path / JSON_NAME
    if not path.exists():
        raise NetSpecError(f"{path}: not found; a NetSpec folder holds {JSON_NAME} and "
                           f"{ARRAYS_NAME} (make one with `cosparse export`)")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NetSpecError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NetSpecError(f"{path}: 'format' must be {FORMAT!r}; this is not a cosparse NetSpec")
    version = _require(doc, "version", str(path))
    if version not in VERSIONS:
        raise NetSpecError(f"{path}: version {version!r} is not supported (this cosparse reads "
                           f"versions {', '.join(map(str, VERSIONS))}); re-export the model "
                           f"with `cosparse export`")
    arrays = _Arrays(path.parent / doc.get("arrays", ARRAYS_NAME))
    input_doc = _require(doc, "input", str(path))
    input_spec = InputSpec(shape=_tuple(_require(input_doc, "shape", "input"), "input", "shape"),
                           qmin=input_doc.get("qmin", 0), qmax=input_doc.get("qmax", 127),
                           quant=input_doc.get("quant", {}))
    layers_doc = _require(doc, "layers", str(path))
    if not isinstance(layers_doc, list):
        raise NetSpecError(f"{path}: 'layers' must be a list")
    layers = tuple(_layer_from_json(layer, arrays, i) for i, layer in enumerate(layers_doc))
    arrays.check_all_used()
    return NetSpec(name=doc.get("name", path.parent.name), input=input_spec, layers=layers,
                   classes=tuple(_require(doc, "classes", str(path))), version=version)


def load_metadata(folder) -> dict:
    """The free-form ``metadata`` object of a saved NetSpec (training provenance etc.)."""
    path = Path(folder)
    path = path / JSON_NAME if path.is_dir() else path
    return json.loads(path.read_text()).get("metadata", {})
