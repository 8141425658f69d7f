"""Turn what a user points a command at into int8 features, labels and names.

Every command that runs the network (golden, simulate, demo, the driver)
accepts the same sources: wav files, a features .npy, a GSC-layout data set,
or, by default, the shipped sample clips. This module is that one shared
path, so each source is checked once and in one way.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import assets, features
from .data.gsc import CLASSES, NOISE_DIR, label_of

__all__ = ["positive", "Inputs", "from_wavs", "from_features", "from_dataset", "default_samples",
           "normalisation_for",
           "resolve", "add_input_arguments", "add_netspec_argument", "add_hw_config_argument",
           "load_hw_config", "load_netspec"]


@dataclass
class Inputs:
    """int8 features ``[n, 1, 32, 32]``, label index per input (-1 unknown), names."""

    x: np.ndarray
    labels: np.ndarray
    names: list

    def __len__(self):
        return len(self.x)


def _label_from_path(path: Path) -> int:
    """Class of a clip from its folder (GSC layout) or a ``<class>_<i>.wav`` name, else -1.

    In the GSC layout (``WORD/<speaker>_nohash_<n>.wav``) a folder that is not
    one of the ten keywords is a word of the "unknown" class, as the data
    set loader maps it; the background-noise folder holds no labelled clips.
    """
    if path.parent.name in CLASSES:
        return CLASSES.index(path.parent.name)
    if "_nohash_" in path.name and path.parent.name and path.parent.name != NOISE_DIR:
        return label_of(path.parent.name)
    stem = path.stem.rsplit("_", 1)[0]
    return CLASSES.index(stem) if stem in CLASSES else -1


def from_wavs(paths, *, convert: bool = False, progress: bool = False,
              normalisation: str = "none") -> Inputs:
    """Features of wav files; labels read from their folder or name where possible.

    ``normalisation``: the feature normalisation of the network that will run
    them (:func:`normalisation_for`).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no wav files given")
    x = features.features_batch(paths, convert=convert, progress=progress,
                                normalisation=normalisation)
    return Inputs(x, np.array([_label_from_path(p) for p in paths]), [str(p) for p in paths])


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _npy_header(path: Path) -> tuple[tuple, np.dtype]:
    """Shape and dtype of a .npy file, checked against its size before anything is loaded.

    A header can claim any shape: reading it first keeps a damaged or
    hostile file from allocating memory it does not hold.
    """
    with open(path, "rb") as handle:
        magic = handle.read(6)
        if magic[:4] == _ZIP_MAGIC:
            raise ValueError(f"{path}: is an .npz archive; --features takes one .npy array "
                             f"(numpy.save), e.g. numpy.save('x.npy', numpy.load('{path.name}')"
                             f"['<name>'])")
        if magic != _NPY_MAGIC:
            raise ValueError(f"{path}: not a numpy .npy file ("
                             f"{'empty file' if not magic else 'no .npy magic'}); save the "
                             f"features with numpy.save")
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f".npy format version {version} is not supported")
            shape, _, dtype = read(handle)
        except Exception as error:  # noqa: BLE001 - numpy's header parser raises SyntaxError,
            # tokenize.TokenError, IndentationError, ... on a damaged header
            raise ValueError(f"{path}: not a readable .npy file "
                             f"({type(error).__name__}: {error})") from None
        data_bytes = path.stat().st_size - handle.tell()
    if dtype.hasobject or dtype.kind not in "iuf":
        raise ValueError(f"{path}: holds dtype {dtype}; features are integers (int8 codes)")
    if len(shape) not in (3, 4):
        raise ValueError(f"{path}: holds an array of shape {list(shape)}; expected "
                         f"[n, C, H, W] or one input [C, H, W]")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > data_bytes:
        raise ValueError(f"{path}: its header promises shape {list(shape)} ({needed:,} bytes) "
                         f"but the file holds {data_bytes:,} bytes of data; the file is "
                         f"truncated or damaged")
    return tuple(shape), dtype


def from_features(path, labels=None, input_shape=None) -> Inputs:
    """Feature codes from a .npy: ``[n, C, H, W]`` or one ``[C, H, W]`` input.

    With ``input_shape`` (the NetSpec's ``(1, H, W)``) an ``[n, H, W]`` array is
    also taken, as docs/data.md says. The file is checked here (magic,
    header, size, at least one input); the value range is checked against
    the NetSpec that runs them (:func:`cosparse.sw.golden.validate_inputs`).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; --features takes a .npy file")
    if not path.exists():
        raise FileNotFoundError(f"features file {path} not found")
    shape, _ = _npy_header(path)
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"{path}: not a readable .npy file ({error})") from None
    if input_shape is not None and raw.ndim == 3 and raw.shape != tuple(input_shape) \
            and input_shape[0] == 1 and raw.shape[1:] == tuple(input_shape[1:]):
        raw = raw[:, None]  # [n, H, W] of a one-channel input
    x = raw[None] if raw.ndim == 3 else raw
    if len(x) == 0:
        raise ValueError(f"{path}: holds no inputs (shape {list(shape)})")
    labels = np.full(len(x), -1) if labels is None else np.asarray(labels)
    return Inputs(x, labels, [f"{path.name}[{i}]" for i in range(len(x))])


def from_dataset(root, split: str = "testing", limit: int | None = None,
                 progress: bool = True, normalisation: str = "none") -> Inputs:
    """The first ``limit`` clips of a split of a GSC-layout data set, in a fixed shuffled order.

    The order is shuffled with a fixed seed so a small ``limit`` still
    covers every class. ``normalisation``: the feature normalisation of the
    network that will run them (:func:`normalisation_for`).
    """
    from .data.dataset import load_features
    x, y, names = load_features(root, split, progress=progress, normalisation=normalisation)
    order = np.random.default_rng(0).permutation(len(x))
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be at least 1, got {limit}")
        order = order[:limit]
    return Inputs(x[order], y[order], [names[i] for i in order])


def default_samples(normalisation: str = "none") -> Inputs:
    """The shipped sample clips, a few per class."""
    folder = assets.require(assets.SAMPLES, "sample clips")
    return from_wavs(sorted(folder.glob("*.wav")), normalisation=normalisation)


def normalisation_for(spec) -> str:
    """The feature normalisation features computed for ``spec`` must have (its
    ``input.quant``; "none" for ``spec`` None and for NetSpecs that record none).

    Raises
    ------
    ValueError
        When the NetSpec records one this cosparse does not know.
    """
    return "none" if spec is None else features.normalisation_of(spec.input.quant)


def add_input_arguments(parser):
    """The shared ``--wav / --features / --dataset`` options of commands that run the network."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", nargs="+", metavar="FILE", help="16 kHz mono wav clips")
    source.add_argument("--features", metavar="NPY",
                        help="int8 feature codes [n, 1, 32, 32] saved with numpy.save")
    source.add_argument("--dataset", metavar="DIR", help="a GSC-layout data set folder")
    parser.add_argument("--split", default="testing", choices=("train", "validation", "testing"),
                        help="split of --dataset (default: testing)")
    parser.add_argument("--limit", type=positive(int),
                        help="use only the first N clips of --dataset")
    parser.add_argument("--convert", action="store_true",
                        help="resample / downmix / centre-crop wavs that are not 16 kHz mono 1 s")


def positive(kind):
    """An argparse ``type`` for a positive ``kind`` (int or float): ``0``, ``-3`` or ``x`` end the
    command with "argument --NAME: must be a positive int, got '0'" before any work."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def check_input_arguments(args):
    """Refuse option combinations that would be ignored, before any work is done."""
    if getattr(args, "limit", None) is not None:
        if not args.dataset:
            raise ValueError("--limit applies to --dataset only")
    if getattr(args, "convert", False) and not args.wav:
        raise ValueError("--convert applies to --wav only; a data set's clips must already "
                         "be 16 kHz mono and at most 1 s (convert them with "
                         "`sox in.wav -r 16000 -c 1 out.wav`)")


def resolve(args, spec=None) -> Inputs:
    """The inputs named by :func:`add_input_arguments`'s options (default: shipped samples).

    With ``spec`` (a NetSpec) the inputs are checked against it here, so a
    command fails on bad inputs before any long step (a build, a run).
    """
    check_input_arguments(args)
    data = _resolve(args, spec)
    if spec is not None:
        from .golden import validate_inputs
        data.x = validate_inputs(spec, data.x)
    return data


def _resolve(args, spec) -> Inputs:
    normalisation = normalisation_for(spec)
    if args.wav:
        return from_wavs(args.wav, convert=args.convert, normalisation=normalisation)
    if args.features:
        return from_features(args.features,
                             input_shape=None if spec is None else spec.input.shape)
    if args.dataset:
        return from_dataset(args.dataset, args.split, args.limit, normalisation=normalisation)
    return default_samples(normalisation)


def add_netspec_argument(parser):
    """The shared ``--netspec DIR`` option (default: the shipped model)."""
    parser.add_argument("--netspec", metavar="DIR",
                        help="NetSpec folder (default: the shipped default model)")


def add_hw_config_argument(parser):
    """The shared ``--hw-config FILE`` option: per-layer parallelism (docs/hardware.md)."""
    parser.add_argument("--hw-config", metavar="FILE",
                        help="hardware config as JSON: per-layer lanes, offsets, acc_bits and "
                             "fifo_depth by layer name, and the global fifo_depth "
                             "(docs/hardware.md; default: balanced per layer; `cosparse "
                             "generate` writes the one it used as hw_config.json); with "
                             "--dense it describes the dense baseline")


def load_hw_config(args, spec):
    """The HwConfig named by :func:`add_hw_config_argument`'s option for ``spec`` (None: the
    default), read before any slow step so that a bad file fails at once."""
    if not getattr(args, "hw_config", None):
        return None
    from ..hw.config import load_hw_config as load
    return load(args.hw_config, spec, dense=getattr(args, "dense", False))


def load_netspec(args):
    """The NetSpec named by :func:`add_netspec_argument`'s option, validated."""
    from . import netspec
    return netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC, "default NetSpec"))
