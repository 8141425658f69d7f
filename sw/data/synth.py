"""An offline stand-in for Google Speech Commands, synthesised with espeak-ng (and flite, festival).

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

Other engines (:mod:`.engines`, ``--engines``) speak with every voice of
flite and festival; ``--holdout-engine`` keeps one engine out of training
(leave-one-engine-out); ``--snr`` and ``--snr-skew`` set the noise. Each
data set gets ``clips.tsv``: engine, voice, speaker, split and SNR per clip.
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

from . import engines, noise
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
    #: Speakers of each other engine (flite, festival): voice x stretch x shift.
    other_speakers: int = 200
    engines: tuple[str, ...] = ("espeak-ng",)
    #: An engine whose clips go to validation and testing only (leave-one-engine-out).
    holdout_engine: str | None = None
    snr_db: tuple[float, float] = (20.0, 45.0)
    #: SNR = lo + (hi - lo) * u ** snr_skew with u uniform: 1 is uniform, larger
    #: values put more clips at low SNR (1.5 over 0-45 dB: 23% below 5 dB, 45% at 5-25).
    snr_skew: float = 1.0
    noise_probability: float = 0.8
    reverb_probability: float = 0.3
    eq_probability: float = 0.5


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice.

    espeak-ng: dialect, variant, base pitch (0-99), base speed (wpm).
    flite / festival: voice, no variant, ``pitch`` a shift in tenths of a
    semitone (-30..30, by resampling), ``speed`` a duration stretch in
    percent (85-125); see :mod:`.engines`.
    """

    voice: str
    variant: str
    pitch: int
    speed: int
    engine: str = "espeak-ng"

    @property
    def id(self) -> str:
        """8 hex digits, like GSC's speaker ids."""
        key = f"{self.voice}+{self.variant}/{self.pitch}/{self.speed}"
        if self.engine != "espeak-ng":  # espeak-ng's ids stay what they were
            key = f"{self.engine}:{key}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Job:
    """One clip to make: word, index within the word, speaker, output path."""

    word: str
    index: int
    speaker: Speaker
    path: Path


class EspeakError(engines.EngineError):
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


def engine_rng(seed: int, word: str, index: int) -> np.random.Generator:
    """The generator of a flite / festival clip's stretch and shift jitter.

    Apart from :func:`clip_rng`: festival speaks a batch of clips before
    any of them is augmented, so these draws come first.
    """
    return np.random.default_rng([seed, zlib.crc32(word.encode()), index, 2])


def other_engine_settings(speaker: Speaker, rng: np.random.Generator) -> tuple[float, float]:
    """(duration stretch, shift in tenths of a semitone) of one flite / festival clip."""
    stretch = speaker.speed / 100 * rng.uniform(0.93, 1.07)
    return stretch, speaker.pitch + rng.uniform(-5, 5)


def speak_other(word: str, speaker: Speaker, settings: tuple[float, float]) -> np.ndarray:
    """``word`` spoken by a flite speaker, or by a festival speaker one at a time."""
    stretch, shift = settings
    if speaker.engine == "flite":
        raw = engines.flite(word, speaker.voice, stretch)
    else:
        raw = engines.festival_batch([(word, speaker.voice, stretch)])[0]
    return engines.shift_semitones(raw, shift)


def _snr(rng: np.random.Generator, cfg: Config) -> float:
    if cfg.snr_skew == 1.0:
        return rng.uniform(*cfg.snr_db)
    lo, hi = cfg.snr_db
    return lo + (hi - lo) * rng.random() ** cfg.snr_skew


def make_clip(word: str, speaker: Speaker, rng: np.random.Generator, cfg: Config,
              babble_bank: list[np.ndarray], speech: np.ndarray | None = None,
              info: dict | None = None) -> np.ndarray:
    """One augmented 1 s clip of ``word`` as int16 [16000].

    ``speech``: the raw speech of a flite / festival speaker (see
    :func:`speak_other`); espeak-ng speakers are spoken here. ``info``, when
    given, receives ``snr_db`` (None for a clip without added noise).
    """
    if speech is None:
        if speaker.engine != "espeak-ng":
            raise ValueError(f"make_clip needs the speech of {speaker.engine} speakers")
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
    snr = None
    if rng.random() < cfg.noise_probability:
        snr = _snr(rng, cfg)
        clip += _noise(rng, babble_bank) * speech_rms * 10 ** (-snr / 20)
    if info is not None:
        info["snr_db"] = None if snr is None else float(snr)
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


def make_other_speakers(engine: str, count: int, seed: int) -> list[Speaker]:
    """``count`` distinct flite / festival speakers: voice x stretch x shift (see Speaker)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"speakers:{engine}".encode())])
    names = engines.voices(engine)
    found: dict[str, Speaker] = {}
    while len(found) < count:
        sp = Speaker(names[rng.integers(len(names))], "", int(rng.integers(-30, 31)),
                     int(rng.integers(85, 126)), engine)
        found.setdefault(sp.id, sp)
    return list(found.values())


def split_of(speaker_id: str, held_out: bool = False) -> str:
    """GSC's rule: a hash of the speaker picks the split (~10% val, ~10% test).

    A speaker of the held-out engine goes to validation or testing only
    (half each), never to training.
    """
    bucket = int(hashlib.sha1(speaker_id.encode()).hexdigest(), 16) % 100
    if held_out:
        return "validation" if bucket < 50 else "testing"
    return "validation" if bucket < 10 else "testing" if bucket < 20 else "train"


def plan(out_dir: Path, seed: int, cfg: Config, words: dict[str, int]) -> list[Job]:
    """Every clip to make: speaker and file name per (word, index).

    With several engines each clip first picks an engine (equal shares),
    then a speaker of it; with espeak-ng alone the draws are those of the
    original single-engine set, so its files stay the same.
    """
    pools = [make_speakers(cfg.speakers, seed) if engine == "espeak-ng"
             else make_other_speakers(engine, cfg.other_speakers, seed)
             for engine in cfg.engines]
    jobs = []
    for word, count in words.items():
        used: dict[str, int] = {}
        for index in range(count):
            pick = np.random.default_rng([seed, zlib.crc32(word.encode()), index, 1])
            speakers = pools[0] if len(pools) == 1 else pools[pick.integers(len(pools))]
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


def _run_chunk(chunk: list[Job]) -> list[tuple[Job, float | None]]:
    """Make and write the clips of ``chunk`` (one engine); (job, SNR in dB or None) each."""
    import soundfile as sf

    seed = _WORKER["seed"]
    speech: list[np.ndarray | None] = [None] * len(chunk)
    if chunk[0].speaker.engine != "espeak-ng":
        settings = [other_engine_settings(job.speaker, engine_rng(seed, job.word, job.index))
                    for job in chunk]
        if chunk[0].speaker.engine == "festival":  # one process for the chunk
            raw = engines.festival_batch([(job.word, job.speaker.voice, stretch)
                                          for job, (stretch, _) in zip(chunk, settings)])
            speech = [engines.shift_semitones(r, shift) for r, (_, shift) in zip(raw, settings)]
        else:
            speech = [speak_other(job.word, job.speaker, s) for job, s in zip(chunk, settings)]
    done = []
    for job, spoken in zip(chunk, speech):
        info: dict = {}
        audio = make_clip(job.word, job.speaker, clip_rng(seed, job.word, job.index),
                          _WORKER["cfg"], _WORKER["bank"], spoken, info)
        sf.write(job.path, audio, RATE, subtype="PCM_16")
        done.append((job, info["snr_db"]))
    return done


def _chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    """Jobs in chunks of one engine each (festival speaks a chunk per process)."""
    out = []
    for engine in dict.fromkeys(job.speaker.engine for job in jobs):
        same = [job for job in jobs if job.speaker.engine == engine]
        out += [same[i:i + size] for i in range(0, len(same), size)]
    return out


def _run_all(jobs: list[Job], seed: int, cfg: Config, jobs_n: int,
             progress: bool) -> dict[Path, float | None]:
    """Make every clip; the SNR of each (None: no noise added), by path."""
    from tqdm import tqdm

    bank = babble_speech(seed)
    for job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    snrs: dict[Path, float | None] = {}
    chunks = _chunks(jobs, 16 if jobs_n > 1 else 48)
    if jobs_n == 1:
        _init_worker(seed, cfg, bank)
        results = map(_run_chunk, chunks)
    else:
        pool = get_context(_START).Pool(jobs_n, _init_worker, (seed, cfg, bank))
        results = pool.imap_unordered(_run_chunk, chunks)
    try:
        for done in results:
            snrs.update((job.path, snr) for job, snr in done)
            bar.update(len(done))
    finally:
        bar.close()
        if jobs_n != 1:
            pool.terminate()
            pool.join()
    return snrs


#: Per clip: engine, voice, speaker, split and SNR (``cosparse evaluate`` reads it).
MANIFEST = "clips.tsv"
MANIFEST_COLUMNS = ("clip", "engine", "voice", "speaker", "split", "snr_db")


def _write_lists(out_dir: Path, jobs: list[Job], snrs: dict[Path, float | None],
                 holdout_engine: str | None) -> None:
    lists: dict[str, list[str]] = {s: [] for s in LIST_FILES}
    rows = []
    for job in jobs:
        split = split_of(job.speaker.id, job.speaker.engine == holdout_engine)
        clip = f"{job.word}/{job.path.name}"
        if split in lists:
            lists[split].append(clip)
        voice = job.speaker.voice + (f"+{job.speaker.variant}" if job.speaker.variant else "")
        snr = snrs[job.path]
        rows.append("\t".join((clip, job.speaker.engine, voice, job.speaker.id, split,
                               "" if snr is None else f"{snr:.2f}")))
    for split, name in LIST_FILES.items():
        (out_dir / name).write_text("".join(f"{r}\n" for r in sorted(lists[split])))
    (out_dir / MANIFEST).write_text("\t".join(MANIFEST_COLUMNS) + "\n"
                                    + "".join(f"{r}\n" for r in sorted(rows)))


def read_manifest(root) -> dict[str, dict[str, str]]:
    """``ROOT/clips.tsv`` as ``{clip: {column: value}}``; empty when the set has none.

    Data sets synthesised before the manifest existed, and real GSC, have none.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header != MANIFEST_COLUMNS:
        raise ValueError(f"{path}: header {header!r} is not {MANIFEST_COLUMNS!r}; synthesise "
                         f"the data set again")
    return {row[0]: dict(zip(header, row)) for row in (line.split("\t") for line in lines[1:])}


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
    cfg = config or Config()
    check_engines(cfg)
    per_kw = cfg.clips_per_word if clips_per_word is None else clips_per_word
    per_unk = cfg.unknown_clips_per_word if unknown_clips_per_word is None else unknown_clips_per_word
    counts = {w: per_kw for w in (words or KEYWORDS)}
    counts |= {w: per_unk for w in (unknown_words or UNKNOWN_WORDS)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = plan(out_dir, seed, cfg, counts)
    write_noise_files(out_dir, seed)
    snrs = _run_all(todo, seed, cfg, jobs, progress)
    _write_lists(out_dir, todo, snrs, cfg.holdout_engine)
    return out_dir


def check_engines(cfg: Config) -> None:
    """Every engine ``cfg`` speaks with is installed and the held-out one is among them.

    espeak-ng is always needed: it speaks the babble noise.
    """
    check_espeak()
    for engine in cfg.engines:
        engines.require(engine)
    if cfg.holdout_engine is not None:
        if cfg.holdout_engine not in cfg.engines:
            raise ValueError(f"--holdout-engine {cfg.holdout_engine} is not one of --engines "
                             f"{','.join(cfg.engines)}")
        if len(cfg.engines) < 2:
            raise ValueError("--holdout-engine needs at least two --engines: the held-out "
                             "engine's clips are never trained on")
    lo, hi = cfg.snr_db
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"SNR range must be LO,HI dB with LO <= HI, got {lo},{hi}")
    if not cfg.snr_skew > 0:
        raise ValueError(f"--snr-skew must be > 0, got {cfg.snr_skew}")


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
    parser.add_argument("--engines", default="espeak-ng", metavar="ENGINE,...",
                        help="speech engines, each with every voice it offers: "
                             f"{','.join(engines.ENGINES)} (default %(default)s)")
    parser.add_argument("--holdout-engine", metavar="ENGINE",
                        help="leave-one-engine-out: this engine's clips go to validation and "
                             "testing only, never to training")
    parser.add_argument("--snr", default="20,45", metavar="LO,HI",
                        help="SNR range of the added noise in dB (default %(default)s)")
    parser.add_argument("--snr-skew", type=float, default=1.0,
                        help="SNR = LO + (HI-LO) * u**SKEW: 1 uniform (default), 1.5 weights "
                             "towards low SNR")
    parser.add_argument("--samples", action="store_true",
                        help="write only a few demo clips per class, <class>_<i>.wav")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cli_synth(args: argparse.Namespace) -> int:
    """Run ``synth`` from parsed arguments; prints where the data went and the time."""
    start = time.time()
    try:
        parts = args.snr.split(",")
        try:
            snr = tuple(float(p) for p in parts)
        except ValueError:
            snr = ()
        if len(snr) != 2:
            raise ValueError(f"--snr must be LO,HI in dB (e.g. 0,45), got {args.snr!r}")
        config = Config(engines=engines.parse_engines(args.engines),
                        holdout_engine=args.holdout_engine, snr_db=snr, snr_skew=args.snr_skew)
        if args.samples:
            paths = synthesise_samples(args.out, seed=args.seed)
            print(f"wrote {len(paths)} sample clips to {args.out}")
            return 0
        synthesise(args.out, seed=args.seed, clips_per_word=args.clips_per_word,
                   unknown_clips_per_word=args.unknown_clips_per_word, jobs=args.jobs,
                   progress=not args.quiet, config=config)
    except engines.EngineError as err:
        print(f"cosparse data synth: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote a GSC-layout data set to {args.out} in {time.time() - start:.0f} s")
    return 0


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``synth`` to an argparse subparsers object (``cosparse data synth``)."""
    parser = subparsers.add_parser(
        "synth", help="synthesise a GSC-layout keyword data set (espeak-ng, flite, festival)",
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
