"""Speech engines besides espeak-ng: flite and festival (Debian packages).

A model trained on one synthesiser learns that synthesiser: the shipped
default, trained on espeak-ng only, scores about 66% on the same words
spoken by other engines. The synthesiser therefore speaks with several
engines, each with every voice it offers, so that one engine can be held
out of training entirely (leave-one-engine-out) and accuracy on voices
never trained on is what is measured.

flite and festival have no per-utterance pitch knob shared by all their
voices, so a *speaker* of these engines is a voice, a duration stretch
(the engine's own ``duration_stretch`` / ``Duration_Stretch``; festival's
HTS voice ignores it) and a shift in tenths of a semitone applied
afterwards by resampling, which moves pitch and formants together as a
shorter or longer vocal tract does.

festival starts slowly (about a second), so it speaks a batch of clips per
process (:func:`festival_batch`).
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

RATE = 16000
#: Every engine the synthesiser can speak with, in the order they are listed.
ENGINES = ("espeak-ng", "flite", "festival")
#: flite voices that cannot say arbitrary words (awb_time is a talking clock).
FLITE_LIMITED = frozenset({"awb_time"})


class EngineError(RuntimeError):
    """A speech engine is missing or failed."""


def require(engine: str) -> str:
    """Path of ``engine``'s program, or an :class:`EngineError` naming the Debian package."""
    if engine not in ENGINES:
        raise ValueError(f"unknown speech engine {engine!r}; choose from {', '.join(ENGINES)}")
    exe = shutil.which(engine)
    if exe is None:
        raise EngineError(f"{engine}, a speech synthesiser, is not on PATH; install it with "
                          f"`sudo apt-get install {engine}`")
    return exe


def parse_engines(text: str) -> tuple[str, ...]:
    """``"espeak-ng,flite"`` -> ``("espeak-ng", "flite")``; unknown or repeated names are errors."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError("--engines needs at least one engine, e.g. espeak-ng,flite,festival")
    for name in names:
        if name not in ENGINES:
            raise ValueError(f"unknown speech engine {name!r} in --engines; choose from "
                             f"{', '.join(ENGINES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--engines names an engine twice: {text!r}")
    return names


@lru_cache(maxsize=None)
def voices(engine: str) -> tuple[str, ...]:
    """Sorted voices ``engine`` offers (flite: ``flite -lv``; festival: ``voice.list``)."""
    exe = require(engine)
    if engine == "flite":
        out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=False).stdout
        names = out.split(":", 1)[-1].split()
        found = sorted(set(names) - FLITE_LIMITED)
    elif engine == "festival":
        proc = subprocess.run([exe, "-b", "(print (voice.list))"], capture_output=True,
                              text=True, check=False)
        found = sorted(proc.stdout.strip().strip("()").split())
    else:
        raise ValueError("voices() is for flite and festival; espeak-ng has synth.variants()")
    if not found:
        raise EngineError(f"{engine} offers no voices; install one (Debian: festvox-kallpc16k "
                          f"for festival)")
    return tuple(found)


def _read(data, source: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    try:
        audio, rate = sf.read(data, dtype="float32")
    except Exception as exc:  # soundfile raises several types for junk
        raise EngineError(f"{source} wrote no readable audio ({exc})") from exc
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if len(audio) < 100 or not np.any(audio):
        raise EngineError(f"{source} wrote no speech")
    return soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float32)


def flite(text: str, voice: str, stretch: float) -> np.ndarray:
    """Speak ``text`` with a flite voice; float32 audio at 16 kHz."""
    with tempfile.TemporaryDirectory(prefix="cosparse-flite-") as tmp:
        path = Path(tmp) / "out.wav"
        cmd = [require("flite"), "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}",
               "-t", text, "-o", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not path.is_file():
            raise EngineError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}")
        return _read(io.BytesIO(path.read_bytes()), f"flite voice {voice}")


def festival_batch(items: list[tuple[str, str, float]]) -> list[np.ndarray]:
    """Speak ``(text, voice, stretch)`` items with one festival process; 16 kHz float32 each."""
    if not items:
        return []
    exe = require("festival")
    with tempfile.TemporaryDirectory(prefix="cosparse-festival-") as tmp:
        lines = []
        for i, (text, voice, stretch) in enumerate(items):
            if '"' in text or "\\" in text:
                raise ValueError(f"festival text may not hold quotes or backslashes: {text!r}")
            lines.append(f"(voice_{voice})(Parameter.set 'Duration_Stretch {stretch:.4f})"
                         f"(utt.save.wave (utt.synth (Utterance Text \"{text}\")) "
                         f"\"{Path(tmp) / f'{i}.wav'}\" 'riff)")
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        proc = subprocess.run([exe, "-b", str(script)], capture_output=True, text=True,
                              check=False)
        out = []
        for i, (text, voice, _) in enumerate(items):
            path = Path(tmp) / f"{i}.wav"
            if not path.is_file():
                raise EngineError(f"festival voice {voice} did not speak {text!r} "
                                  f"(exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
            out.append(_read(io.BytesIO(path.read_bytes()), f"festival voice {voice}"))
        return out


def shift_semitones(audio: np.ndarray, tenths: float) -> np.ndarray:
    """Raise (or lower) pitch and formants by ``tenths`` / 10 semitones by resampling.

    The clip gets shorter by the same factor, as speech from a smaller
    vocal tract played at the same rate would.
    """
    import soxr

    if tenths == 0:
        return audio
    factor = 2.0 ** (tenths / 120.0)
    return soxr.resample(audio, RATE, RATE / factor, quality="HQ").astype(np.float32)
