"""Loader for the Google Speech Commands layout (v0.01 and v0.02).

Layout::

    ROOT/<word>/<speaker>_nohash_<n>.wav
    ROOT/_background_noise_/*.wav
    ROOT/validation_list.txt      paths relative to ROOT, one a line
    ROOT/testing_list.txt

Training is every clip listed in neither file.  The 12-way task keeps ten
words, maps every other word folder to "unknown", and adds "silence": 1 s
windows cut from the background-noise files.

Silence windows are deterministic from a seed.  Each noise file is divided
into three disjoint regions in proportion 80/10/10 (train/validation/testing)
and a split's windows are drawn only from its own region, so no noise sample
appears in two splits.  Each window is scaled by a gain drawn uniformly in
[0, 1] (the standard TensorFlow recipe's background volume range), so
silence spans from digital silence to full-level noise.
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

CLASSES = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
           "silence", "unknown")
KEYWORDS = CLASSES[:10]
SILENCE = CLASSES.index("silence")
UNKNOWN = CLASSES.index("unknown")
SPLITS = ("train", "validation", "testing")
NOISE_DIR = "_background_noise_"
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
#: Share of each noise file given to each split's silence windows, in order.
NOISE_REGIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}
CLIP_SAMPLES = 16000


class LayoutError(ValueError):
    """The data folder does not follow the GSC layout; says what is missing."""


@dataclass(frozen=True)
class Example:
    """One labelled example of a split.

    Attributes
    ----------
    path : pathlib.Path
        The wav file: the clip itself, or for silence the noise file.
    label : int
        Index into :data:`CLASSES`.
    word : str
        The folder name ("silence" for noise windows).
    noise_start : int
        For silence: first sample of the 1 s window in ``path``; -1 otherwise.
    gain : float
        For silence: factor applied to the window; 1.0 otherwise.
    """

    path: Path
    label: int
    word: str
    noise_start: int = -1
    gain: float = 1.0

    @property
    def name(self) -> str:
        """Stable id: the path relative to the root, plus window and gain."""
        rel = f"{self.path.parent.name}/{self.path.name}"
        if self.noise_start < 0:
            return rel
        return f"{rel}@{self.noise_start}x{self.gain:.4f}"


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder; point at the GSC root holding "
                          "the word folders (or make one with `cosparse data synth`)")
    for name in LIST_FILES.values():
        if not (root / name).is_file():
            raise LayoutError(f"{root}: {name} is missing; a GSC root holds "
                              "validation_list.txt and testing_list.txt next to the word folders")


def word_folders(root: str | os.PathLike) -> list[str]:
    """Sorted names of the word folders (every folder not starting with '_' or '.')."""
    root = Path(root)
    _check_root(root)
    words = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith(("_", ".")))
    if not words:
        raise LayoutError(f"{root}: holds no word folders (e.g. yes/, no/); "
                          "is this the GSC root?")
    return words


def _read_list(root: Path, split: str) -> set[str]:
    """The entries of a list file, each ``word/clip.wav`` inside the data set."""
    path = root / LIST_FILES[split]
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LayoutError(f"{path}: cannot be read ({error})") from None
    entries = set()
    for number, line in enumerate(lines, 1):
        entry = line.strip().replace("\\", "/")
        if not entry:
            continue
        parts = PurePosixPath(entry).parts
        if (entry.startswith("/") or len(parts) != 2 or any(p in (".", "..") for p in parts)
                or parts[0] == NOISE_DIR or ":" in parts[0]):
            raise LayoutError(f"{path}, line {number}: {entry!r} is not a clip of the data set; "
                              f"each line must be word/clip.wav, relative to {root} (no '..', "
                              f"no absolute path, not {NOISE_DIR})")
        entries.add(entry)
    return entries


def _split_of_clips(root: Path, split: str) -> list[str]:
    """Relative paths 'word/file.wav' of the clips in ``split``, sorted."""
    held_out = {s: _read_list(root, s) for s in LIST_FILES}
    both = sorted(held_out["validation"] & held_out["testing"])
    if both:
        raise LayoutError(f"{root}: {len(both)} clip(s) are listed in both "
                          f"{LIST_FILES['validation']} and {LIST_FILES['testing']}, e.g. "
                          f"{both[0]}; a clip belongs to one split")
    if split in held_out:
        missing = sorted(r for r in held_out[split] if not (root / r).is_file())
        if missing:
            raise LayoutError(f"{root / LIST_FILES[split]}: lists {len(missing)} clip(s) "
                              f"that do not exist, e.g. {missing[0]}")
        return sorted(held_out[split])
    others = held_out["validation"] | held_out["testing"]
    clips = []
    for word in word_folders(root):
        clips += [f"{word}/{p.name}" for p in sorted((root / word).glob("*.wav"))]
    return [c for c in clips if c not in others]


def label_of(word: str) -> int:
    """Class index of a word folder: one of the ten keywords, else unknown."""
    return CLASSES.index(word) if word in KEYWORDS else UNKNOWN


def _seed_for(seed: int, split: str, what: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{split}/{what}".encode())])


def _cap_unknown(examples: list[Example], fraction: float | None,
                 rng: np.random.Generator) -> list[Example]:
    """Keep at most ceil(fraction * known) unknown clips, chosen by ``rng``."""
    if fraction is None:
        return examples
    known = [e for e in examples if e.label != UNKNOWN]
    unknown = [e for e in examples if e.label == UNKNOWN]
    keep = min(len(unknown), math.ceil(fraction * len(known)))
    chosen = sorted(rng.choice(len(unknown), size=keep, replace=False)) if keep else []
    return known + [unknown[i] for i in chosen]


def noise_files(root: str | os.PathLike) -> list[Path]:
    """Sorted wavs of ROOT/_background_noise_/ (error if none: silence needs them)."""
    folder = Path(root) / NOISE_DIR
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise LayoutError(f"{folder}: no background-noise wavs; silence examples are "
                          "cut from them (pass silence_fraction=0 to do without)")
    return files


def _silence(root: Path, split: str, count: int, seed: int) -> list[Example]:
    """``count`` 1 s noise windows from this split's region of each noise file."""
    import soundfile as sf

    if count == 0:
        return []
    rng = _seed_for(seed, split, "silence")
    lo, hi = NOISE_REGIONS[split]
    regions = []
    for path in noise_files(root):
        frames = sf.info(str(path)).frames
        start, stop = int(lo * frames), int(hi * frames) - CLIP_SAMPLES
        if stop >= start:
            regions.append((path, start, stop))
    if not regions:
        raise LayoutError(f"{root / NOISE_DIR}: every noise file is too short to give "
                          f"the {split} split a 1 s window (need >= 10 s per file)")
    out = []
    for _ in range(count):
        path, start, stop = regions[rng.integers(len(regions))]
        out.append(Example(path, SILENCE, "silence", int(rng.integers(start, stop + 1)),
                           float(rng.uniform(0.0, 1.0))))
    return out


def list_split(root: str | os.PathLike, split: str, *, silence_fraction: float = 0.1,
               unknown_fraction: float | None = None, seed: int = 0) -> list[Example]:
    """The labelled examples of one split.

    Parameters
    ----------
    root : path-like
        GSC root (see the module docstring).
    split : {"train", "validation", "testing"}
    silence_fraction : float
        Silence windows added = ceil(silence_fraction * clips in the split,
        after the unknown cap); 0.1 as in the standard recipe.
    unknown_fraction : float or None
        None (default) keeps every unknown clip.  Otherwise keep at most
        ceil(unknown_fraction * keyword clips) unknown clips, picked by the
        seed (the standard recipe uses 0.1, since real GSC has more unknown
        than keyword clips).
    seed : int
        Drives the silence windows, their gains and the unknown subsample.

    Returns
    -------
    list of Example
        Clips in sorted path order, then silence windows.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = Path(root)
    word_folders(root)
    clips = _split_of_clips(root, split)
    if not clips:
        raise LayoutError(f"{root}: the {split} split holds no clips; check the word "
                          "folders and the list files")
    examples = [Example(root / c, label_of(c.split("/")[0]), c.split("/")[0]) for c in clips]
    examples = _cap_unknown(examples, unknown_fraction, _seed_for(seed, split, "unknown"))
    count = math.ceil(silence_fraction * len(examples))
    return examples + _silence(root, split, count, seed)


def load_example(example: Example) -> np.ndarray:
    """1 s of float32 audio of an example (clip via load_wav, or noise window)."""
    import soundfile as sf

    from .. import features

    if example.noise_start < 0:
        return features.load_wav(example.path)
    audio, rate = sf.read(str(example.path), dtype="float32", start=example.noise_start,
                          frames=CLIP_SAMPLES, always_2d=True)
    if rate != features.SAMPLE_RATE or audio.shape != (CLIP_SAMPLES, 1):
        raise features.AudioError(f"{example.path}: background noise must be 16 kHz mono "
                                  f"(found {rate} Hz, {audio.shape[1]} channel(s)); "
                                  "convert it with `sox in.wav -r 16000 -c 1 out.wav`")
    return audio[:, 0] * np.float32(example.gain)


class GSCDataset:
    """A GSC root: split listing and audio access in one object.

    Parameters
    ----------
    root : path-like
    silence_fraction, unknown_fraction, seed
        As in :func:`list_split`.
    """

    def __init__(self, root: str | os.PathLike, *, silence_fraction: float = 0.1,
                 unknown_fraction: float | None = None, seed: int = 0):
        self.root = Path(root)
        _check_root(self.root)
        self.options = dict(silence_fraction=silence_fraction,
                            unknown_fraction=unknown_fraction, seed=seed)

    def split(self, split: str) -> list[Example]:
        """Examples of one split (see :func:`list_split`)."""
        return list_split(self.root, split, **self.options)

    @staticmethod
    def audio(example: Example) -> np.ndarray:
        """1 s of float32 audio of one example."""
        return load_example(example)
