"""Turn what a user points a command at into int8 features, labels and names.

Every command that runs the network (golden, simulate, demo, the driver)
accepts the same sources: wav files, a features .npy, a GSC-layout data set,
or, by default, the shipped sample clips. This module is that one shared
path, so each source is checked once and in one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import assets, features
from .data.gsc import CLASSES, NOISE_DIR, label_of

__all__ = ["Inputs", "from_wavs", "from_features", "from_dataset", "default_samples",
           "resolve", "add_input_arguments", "add_netspec_argument", "load_netspec"]


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


def from_wavs(paths, *, convert: bool = False, progress: bool = False) -> Inputs:
    """Features of wav files; labels read from their folder or name where possible."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no wav files given")
    x = features.features_batch(paths, convert=convert, progress=progress)
    return Inputs(x, np.array([_label_from_path(p) for p in paths]), [str(p) for p in paths])


def from_features(path, labels=None) -> Inputs:
    """Feature codes from a .npy: ``[n, C, H, W]`` or one ``[C, H, W]`` input.

    Only the file is checked here; the shape and value range are checked
    against the NetSpec that runs them (:func:`cosparse.sw.golden.validate_inputs`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"features file {path} not found")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"{path}: not a numpy .npy array ({error or 'empty file'})") from None
    x = raw[None] if raw.ndim == 3 else raw
    labels = np.full(len(x), -1) if labels is None else np.asarray(labels)
    return Inputs(x, labels, [f"{path.name}[{i}]" for i in range(len(x))])


def from_dataset(root, split: str = "testing", limit: int | None = None,
                 progress: bool = True) -> Inputs:
    """The first ``limit`` clips of a split of a GSC-layout data set, in a fixed shuffled order.

    The order is shuffled with a fixed seed so a small ``limit`` still
    covers every class.
    """
    from .data.dataset import load_features
    x, y, names = load_features(root, split, progress=progress)
    order = np.random.default_rng(0).permutation(len(x))
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be at least 1, got {limit}")
        order = order[:limit]
    return Inputs(x[order], y[order], [names[i] for i in order])


def default_samples() -> Inputs:
    """The shipped sample clips, a few per class."""
    folder = assets.require(assets.SAMPLES, "sample clips")
    return from_wavs(sorted(folder.glob("*.wav")))


def add_input_arguments(parser):
    """The shared ``--wav / --features / --dataset`` options of commands that run the network."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", nargs="+", metavar="FILE", help="16 kHz mono wav clips")
    source.add_argument("--features", metavar="NPY",
                        help="int8 feature codes [n, 1, 32, 32] saved with numpy.save")
    source.add_argument("--dataset", metavar="DIR", help="a GSC-layout data set folder")
    parser.add_argument("--split", default="testing", choices=("train", "validation", "testing"),
                        help="split of --dataset (default: testing)")
    parser.add_argument("--limit", type=int, help="use only the first N clips of --dataset")
    parser.add_argument("--convert", action="store_true",
                        help="resample / downmix / centre-crop wavs that are not 16 kHz mono 1 s")


def resolve(args) -> Inputs:
    """The inputs named by :func:`add_input_arguments`'s options (default: shipped samples)."""
    if args.wav:
        return from_wavs(args.wav, convert=args.convert)
    if args.features:
        return from_features(args.features)
    if args.dataset:
        return from_dataset(args.dataset, args.split, args.limit)
    return default_samples()


def add_netspec_argument(parser):
    """The shared ``--netspec DIR`` option (default: the shipped model)."""
    parser.add_argument("--netspec", metavar="DIR",
                        help="NetSpec folder (default: the shipped default model)")


def load_netspec(args):
    """The NetSpec named by :func:`add_netspec_argument`'s option, validated."""
    from . import netspec
    return netspec.load(args.netspec or assets.require(assets.DEFAULT_NETSPEC, "default NetSpec"))
