"""An offline stand-in for Google Speech Commands, synthesised with espeak-ng.

The output follows the real GSC layout exactly (see :mod:`.gsc`), so the same
loader, training and evaluation code runs on it:

- one folder per word: the ten keywords, the real GSC extra words and a set
  of confusable words (all "unknown" to the 12-way task);
- ``_background_noise_/``: six 60 s noise files (white, pink, brown, running
  tap, hum, babble of overlaid espeak speech) from which the loader cuts the
  silence class;
- ``validation_list.txt`` / ``testing_list.txt``: split by speaker with
  GSC's hash rule, so a speaker's clips all land in one split.

A *speaker* is an espeak-ng voice (English dialect), a voice variant (m1..m8,
f1..f5, croak, klatt, whisper, ...; mbrola voices are not used because they
need the separate mbrola package), a base pitch and a base speed; its id is
a hash of those, used as ``<speaker>_nohash_<n>.wav``.  Each clip then jitters
speed, pitch and amplitude around the speaker's, and is augmented: optional
low/high-pass "microphone" EQ, optional short reverb, a random position in the
1 s window, and background noise of a random kind at a random SNR.  The SNR
range and the unknown-word list are the difficulty knobs.

Every clip depends only on (seed, word, index), so clips are made in
parallel and the same seed gives byte-identical files.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from . import noise
from .gsc import CLASSES, KEYWORDS, LIST_FILES, NOISE_DIR

#: fork where there is one: spawn would re-import the caller's script, which
#: breaks scripts without an ``if __name__ == "__main__"`` guard.
_START = "fork" if "fork" in get_all_start_methods() else "spawn"
RATE = 16000
CLIP = 16000
ESPEAK_RATE = 22050
#: Dialects of espeak-ng's English voice; combined with every variant.
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
#: The extra words of GSC v0.02 (all "unknown" in the 12-way task).
GSC_EXTRA_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy",
                   "house", "marvin", "nine", "one", "seven", "sheila", "six",
                   "three", "tree", "two", "wow", "zero", "backward", "forward",
                   "follow", "learn", "visual")
#: Words sharing sounds with the keywords, so "unknown" is not trivially
#: separable.  Closer near misses (bright, upper, often, yet) made the task
#: too hard for a small CNN (89% test accuracy together with SNR 0-30 dB).
CONFUSABLE_WORDS = ("mess", "cough", "step", "dawn", "toss")
UNKNOWN_WORDS = GSC_EXTRA_WORDS + CONFUSABLE_WORDS
#: Filler speech for babble noise; no keyword, so babble is not a keyword.
BABBLE_TEXT = ("the weather is nice today and we should walk to the market then "
               "maybe have some lunch with friends at the small cafe near the "
               "station where they serve fresh bread and coffee every morning")
NOISE_FILES = ("white_noise", "pink_noise", "brown_noise", "running_tap", "hum",
               "babble")
NOISE_SECONDS = 60


@dataclass(frozen=True)
class Config:
    """Difficulty and size knobs of :func:`synthesise` (see its docstring)."""

    clips_per_word: int = 1500
    unknown_clips_per_word: int = 75
    speakers: int = 600
    snr_db: tuple[float, float] = (20.0, 45.0)
    noise_probability: float = 0.8
    reverb_probability: float = 0.3
    eq_probability: float = 0.5


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice: dialect, variant, base pitch (0-99), base speed (wpm)."""

    voice: str
    variant: str
    pitch: int
    speed: int

    @property
    def id(self) -> str:
        """8 hex digits, like GSC's speaker ids."""
        key = f"{self.voice}+{self.variant}/{self.pitch}/{self.speed}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Job:
    """One clip to make: word, index within the word, speaker, output path."""

    word: str
    index: int
    speaker: Speaker
    path: Path


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed."""


def check_espeak() -> str:
    """Path of espeak-ng, or an error saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakError("espeak-ng, the speech synthesiser, is not on PATH; install it "
                          "with `sudo apt-get install espeak-ng`")
    return exe


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    """Sorted voice variants known to the installed espeak-ng (m1, f3, croak, ...)."""
    out = subprocess.run([check_espeak(), "--voices=variant"], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split()[-1].split("/")[-1] for line in out.splitlines()[1:] if "!v/" in line]
    if not names:
        raise EspeakError("espeak-ng --voices=variant lists no variants; is espeak-ng-data installed?")
    return tuple(sorted(set(names)))


def espeak(text: str, *, voice: str = "en-us", variant: str = "m1", speed: int = 160,
           pitch: int = 50, amplitude: int = 100) -> np.ndarray:
    """Speak ``text`` with espeak-ng; float32 audio resampled to 16 kHz."""
    import soundfile as sf
    import soxr

    cmd = [check_espeak(), "--stdout", "-v", f"{voice}+{variant}", "-s", str(speed),
           "-p", str(pitch), "-a", str(amplitude), text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise EspeakError(f"`{' '.join(cmd)}` failed: {proc.stderr.decode().strip()}")
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float32)


# --------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------

def _trim(audio: np.ndarray) -> np.ndarray:
    """Cut espeak's leading and trailing silence (keep 5 ms either side)."""
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[max(0, loud[0] - 80):loud[-1] + 80]


def _fit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Squeeze speech longer than 0.95 s (slow voices) to fit the window."""
    import soxr

    limit = int(0.95 * CLIP)
    if len(audio) <= limit:
        return audio
    target = int(rng.uniform(0.85, 0.95) * CLIP)
    return soxr.resample(audio, len(audio), target, quality="HQ")[:limit].astype(np.float32)


def _eq(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap "microphone": random low-pass or high-pass (2nd-order Butterworth)."""
    from scipy.signal import butter, lfilter

    if rng.random() < 0.5:
        b, a = butter(2, rng.uniform(2500, 7000), btype="low", fs=RATE)
    else:
        b, a = butter(2, rng.uniform(100, 500), btype="high", fs=RATE)
    return lfilter(b, a, audio).astype(np.float32)


def _reverb(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small room: exponentially decaying noise impulse response, mixed in."""
    rt60 = rng.uniform(0.1, 0.4)
    n = int(rt60 * RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    wet = np.convolve(audio, ir / np.sqrt(np.sum(ir ** 2)))
    mix = rng.uniform(0.1, 0.4)
    out = np.pad(audio, (0, n - 1)) * (1 - mix) + wet * mix
    return _trim(out.astype(np.float32))


def _noise(rng: np.random.Generator, babble_bank: list[np.ndarray]) -> np.ndarray:
    kinds = list(noise.SIMPLE) + ["babble"]
    kind = kinds[rng.integers(len(kinds))]
    if kind == "babble":
        picks = rng.choice(len(babble_bank), size=3, replace=False)
        return noise.babble(CLIP, rng, [babble_bank[i] for i in picks])
    return noise.SIMPLE[kind](CLIP, rng)


def clip_rng(seed: int, word: str, index: int) -> np.random.Generator:
    """The generator of one clip: a function of (seed, word, index) only."""
    return np.random.default_rng([seed, zlib.crc32(word.encode()), index])


def make_clip(word: str, speaker: Speaker, rng: np.random.Generator, cfg: Config,
              babble_bank: list[np.ndarray]) -> np.ndarray:
    """One augmented 1 s clip of ``word`` as int16 [16000]."""
    speech = espeak(word, voice=speaker.voice, variant=speaker.variant,
                    speed=int(np.clip(speaker.speed + rng.integers(-15, 16), 80, 300)),
                    pitch=int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99)),
                    amplitude=int(rng.integers(60, 150)))
    speech = _trim(speech)
    if rng.random() < cfg.eq_probability:
        speech = _eq(speech, rng)
    if rng.random() < cfg.reverb_probability:
        speech = _reverb(speech, rng)
    speech = _fit(speech, rng)
    clip = np.zeros(CLIP, np.float32)
    start = int(rng.integers(0, CLIP - len(speech) + 1))
    clip[start:start + len(speech)] = speech
    speech_rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2))
    if rng.random() < cfg.noise_probability:
        snr = rng.uniform(*cfg.snr_db)
        clip += _noise(rng, babble_bank) * speech_rms * 10 ** (-snr / 20)
    peak = rng.uniform(0.1, 0.9)
    clip *= peak / max(np.abs(clip).max(), 1e-9)
    return np.round(clip * 32767).astype(np.int16)


# --------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------

def make_speakers(count: int, seed: int) -> list[Speaker]:
    """``count`` distinct speakers drawn from voices x variants x pitch x speed."""
    rng = np.random.default_rng([seed, zlib.crc32(b"speakers")])
    found: dict[str, Speaker] = {}
    names = variants()
    while len(found) < count:
        sp = Speaker(VOICES[rng.integers(len(VOICES))], names[rng.integers(len(names))],
                     int(rng.integers(15, 86)), int(rng.integers(120, 221)))
        found.setdefault(sp.id, sp)
    return list(found.values())


def split_of(speaker_id: str) -> str:
    """GSC's rule: a hash of the speaker picks the split (~10% val, ~10% test)."""
    bucket = int(hashlib.sha1(speaker_id.encode()).hexdigest(), 16) % 100
    return "validation" if bucket < 10 else "testing" if bucket < 20 else "train"


def plan(out_dir: Path, seed: int, cfg: Config, words: dict[str, int]) -> list[Job]:
    """Every clip to make: speaker and file name per (word, index)."""
    speakers = make_speakers(cfg.speakers, seed)
    jobs = []
    for word, count in words.items():
        used: dict[str, int] = {}
        for index in range(count):
            pick = np.random.default_rng([seed, zlib.crc32(word.encode()), index, 1])
            speaker = speakers[pick.integers(len(speakers))]
            n = used[speaker.id] = used.get(speaker.id, -1) + 1
            jobs.append(Job(word, index, speaker, out_dir / word / f"{speaker.id}_nohash_{n}.wav"))
    return jobs


def babble_speech(seed: int, streams: int = 6) -> list[np.ndarray]:
    """Talkers for babble: espeak reading shuffled filler text, ~8 s each."""
    rng = np.random.default_rng([seed, zlib.crc32(b"babble")])
    words = BABBLE_TEXT.split()
    out = []
    for _ in range(streams):
        text = " ".join(rng.permutation(words))
        out.append(_trim(espeak(text, voice=VOICES[rng.integers(len(VOICES))],
                                variant=variants()[rng.integers(len(variants()))],
                                speed=int(rng.integers(140, 200)),
                                pitch=int(rng.integers(20, 80)))))
    return out


def write_noise_files(out_dir: Path, seed: int, seconds: int = NOISE_SECONDS) -> None:
    """The ``_background_noise_`` folder: one file per kind, RMS 0.1."""
    import soundfile as sf

    folder = out_dir / NOISE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    n = seconds * RATE
    for name in NOISE_FILES:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if name == "babble":
            x = noise.babble(n, rng, babble_speech(seed + 1, streams=8))
        else:
            x = noise.SIMPLE[name.removesuffix("_noise")](n, rng)
        x = np.clip(0.1 * x, -1, 1)
        sf.write(folder / f"{name}.wav", np.round(x * 32767).astype(np.int16), RATE,
                 subtype="PCM_16")


_WORKER: dict = {}


def _init_worker(seed: int, cfg: Config, bank: list[np.ndarray]) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one process per core already; BLAS threads only contend
    _WORKER.update(seed=seed, cfg=cfg, bank=bank)


def _run_job(job: Job) -> str:
    import soundfile as sf

    rng = clip_rng(_WORKER["seed"], job.word, job.index)
    audio = make_clip(job.word, job.speaker, rng, _WORKER["cfg"], _WORKER["bank"])
    sf.write(job.path, audio, RATE, subtype="PCM_16")
    return job.speaker.id


def _run_all(jobs: list[Job], seed: int, cfg: Config, jobs_n: int, progress: bool) -> None:
    from tqdm import tqdm

    bank = babble_speech(seed)
    for job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    bar = dict(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    if jobs_n == 1:
        _init_worker(seed, cfg, bank)
        for job in tqdm(jobs, **bar):
            _run_job(job)
        return
    with get_context(_START).Pool(jobs_n, _init_worker, (seed, cfg, bank)) as pool:
        for _ in tqdm(pool.imap_unordered(_run_job, jobs, chunksize=16), **bar):
            pass


def _write_lists(out_dir: Path, jobs: list[Job]) -> None:
    lists: dict[str, list[str]] = {s: [] for s in LIST_FILES}
    for job in jobs:
        split = split_of(job.speaker.id)
        if split in lists:
            lists[split].append(f"{job.word}/{job.path.name}")
    for split, name in LIST_FILES.items():
        (out_dir / name).write_text("".join(f"{r}\n" for r in sorted(lists[split])))


def synthesise(out_dir, *, seed: int = 0, clips_per_word: int | None = None,
               unknown_clips_per_word: int | None = None, words: list[str] | None = None,
               unknown_words: list[str] | None = None, config: Config | None = None,
               jobs: int = 2, progress: bool = True) -> Path:
    """Write a GSC-layout data set of synthetic speech to ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Created if needed; existing clips of the same names are overwritten.
    seed : int
        Everything (speakers, augmentation, noise files, splits) follows from it.
    clips_per_word : int, optional
        Clips per keyword (default ``Config.clips_per_word`` = 1500).
    unknown_clips_per_word : int, optional
        Clips per unknown word (default 50, i.e. 1,750 unknown clips, about
        15% of the clips; the loader adds 10% silence).
    words, unknown_words : list of str, optional
        Override the keywords / unknown words (tests use a few).
    config : Config, optional
        Difficulty knobs: number of speakers, SNR range in dB, probabilities
        of noise, reverb and EQ.
    jobs : int
        Processes running espeak-ng and the augmentation.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    check_espeak()
    cfg = config or Config()
    per_kw = cfg.clips_per_word if clips_per_word is None else clips_per_word
    per_unk = cfg.unknown_clips_per_word if unknown_clips_per_word is None else unknown_clips_per_word
    counts = {w: per_kw for w in (words or KEYWORDS)}
    counts |= {w: per_unk for w in (unknown_words or UNKNOWN_WORDS)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = plan(out_dir, seed, cfg, counts)
    write_noise_files(out_dir, seed)
    _run_all(todo, seed, cfg, jobs, progress)
    _write_lists(out_dir, todo)
    return out_dir


def synthesise_samples(out_dir, *, per_class: int = 2, seed: int = 1234,
                       config: Config | None = None) -> list[Path]:
    """A few demo clips per class, flat: ``<class>_<i>.wav`` (24 wavs by default).

    Keywords are spoken by random speakers; "unknown" clips say random
    unknown words; "silence" clips are 1 s of a random noise kind at a random
    level (as the loader's silence windows are).
    """
    import soundfile as sf

    check_espeak()
    cfg = config or Config()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(max(per_class * len(CLASSES), 8), seed)
    bank = babble_speech(seed)
    paths = []
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            rng = clip_rng(seed, name, i)
            if name == "silence":
                audio = _noise(rng, bank) * rng.uniform(0.01, 0.1)
                audio = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
            else:
                word = UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))] if name == "unknown" else name
                audio = make_clip(word, speakers[(c * per_class + i) % len(speakers)], rng, cfg, bank)
            paths.append(out_dir / f"{name}_{i}.wav")
            sf.write(paths[-1], audio, RATE, subtype="PCM_16")
    return paths


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder, e.g. data/gsc-synth")
    parser.add_argument("--seed", type=int, default=0, help="seed (same seed, same bytes)")
    parser.add_argument("--clips-per-word", type=int, default=Config.clips_per_word,
                        help="clips per keyword (default %(default)s)")
    parser.add_argument("--unknown-clips-per-word", type=int,
                        default=Config.unknown_clips_per_word,
                        help="clips per unknown word (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes")
    parser.add_argument("--samples", action="store_true",
                        help="write only a few demo clips per class, <class>_<i>.wav")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cli_synth(args: argparse.Namespace) -> int:
    """Run ``synth`` from parsed arguments; prints where the data went and the time."""
    start = time.time()
    try:
        if args.samples:
            paths = synthesise_samples(args.out, seed=args.seed)
            print(f"wrote {len(paths)} sample clips to {args.out}")
            return 0
        synthesise(args.out, seed=args.seed, clips_per_word=args.clips_per_word,
                   unknown_clips_per_word=args.unknown_clips_per_word, jobs=args.jobs,
                   progress=not args.quiet)
    except EspeakError as err:
        print(f"cosparse data synth: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote a GSC-layout data set to {args.out} in {time.time() - start:.0f} s")
    return 0


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``synth`` to an argparse subparsers object (``cosparse data synth``)."""
    parser = subparsers.add_parser(
        "synth", help="synthesise a GSC-layout keyword data set with espeak-ng",
        description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    parser.set_defaults(func=cli_synth)
    return parser


def main(argv=None) -> int:
    """``python -m cosparse.sw.data.synth --out DIR [--seed S] ...``."""
    parser = argparse.ArgumentParser(prog="python -m cosparse.sw.data.synth",
                                     description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    return cli_synth(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
