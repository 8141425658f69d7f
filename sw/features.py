"""Audio front end: 1 s of 16 kHz audio to an int8 32x32 log-mel image.

Every model, the golden model and the hardware see the same input: the
log-mel spectrogram of the GSC network (32 mel bands x 32 frames, as in
Hunter, Spracklen, Ahmad, arXiv 2112.13896; docs/data.md) quantised to int8 in
[0, 127].  The quantisation is chosen so that the quietest value (-80 dB, the
``top_db`` floor of ``librosa.power_to_db``) becomes exactly 0: the hardware
skips zero activations, so quiet time-frequency cells cost nothing.  The
float model is trained on ``q / 127``, so going from float to integer model
loses nothing at the input.

Audio policies (what :func:`load_wav` does with awkward files) are strict by
default: a file that is not 16 kHz mono, is longer than 1 s, is empty, is
truncated (its header promises more samples than it holds), holds NaN/inf,
or holds float samples beyond full scale is rejected with a message that
names the file and the fix; ``convert=True`` resamples, averages channels,
keeps the centred second and clips samples to full scale instead.  Clips
shorter than 1 s are zero-padded at the end, because GSC clips are "at most
1 s" by construction.  Digital silence has a defined, flat log-mel (see
:func:`logmel`), which the shipped model classifies as "silence".

An optional per-band normalisation (:data:`NORMALISATIONS`) is applied
between the log-mel and the quantisation: ``"none"`` (the default, and what
the shipped model was trained on) leaves today's features untouched, bit for
bit; ``"band-mean"`` subtracts from every mel band its mean over the clip's
frames (in dB) and ``"band-floor"`` its 10th percentile (a noise-floor
estimate); either removes any fixed per-band gain (a microphone's or a
speech engine's EQ, spectral tilt, channel) exactly, and quantises the
result on its own fixed range (:data:`WINDOWS`). A model is trained on one
normalisation; its NetSpec records it in ``input.quant``
(:func:`input_quant_spec`, :func:`normalisation_of`), and everything that
computes features for a NetSpec applies that one.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
N_MELS = 32
N_FRAMES = 32
N_FFT = 2048
HOP = 512
DB_FLOOR = -80.0
DB_CEIL = 0.0
QMIN = 0
QMAX = 127
#: int8 steps per dB: the 80 dB range [-80, 0] maps onto [0, 127].
SCALE = QMAX / (DB_CEIL - DB_FLOOR)
#: ``librosa.power_to_db``'s default ``amin``: power at or below it everywhere
#: is treated as digital silence (see :func:`logmel`).
POWER_AMIN = 1e-10
#: Largest sample magnitude: PCM files cannot exceed it, float files must not (unless converted).
FULL_SCALE = 1.0
FEATURE_SHAPE = (1, N_MELS, N_FRAMES)
#: Per-band feature normalisations: "none" (today's features), "band-mean"
#: (every mel band minus its mean over the frames, in dB) and "band-floor" (minus
#: its 10th percentile over the frames). See :func:`normalise`.
NORMALISATIONS = ("none", "band-mean", "band-floor")
#: dB relative to the band's mean that "band-mean" maps to code 0 and to code
#: 127 (the same 127/80 codes per dB as "none", so the same 0.63 dB step). On the
#: training split of docs/sparsity.md's small voices set (3,450 clips) 0.8% of
#: the cells lie below the floor (quiet cells far under their band's mean) and
#: 0.4% above the ceiling (speech peaks); both are clipped.
BAND_MEAN_FLOOR = -30.0
BAND_MEAN_CEIL = 50.0
#: Percentile over the frames that "band-floor" takes as each band's noise floor.
BAND_FLOOR_PERCENTILE = 10
#: "band-floor"'s window, dB relative to the band's floor: on the same training
#: split 0.45% of the cells lie below it and 0.36% above it (clipped).
BAND_FLOOR_FLOOR = -5.0
BAND_FLOOR_CEIL = 75.0
#: ``(db_floor, db_ceil)`` each normalisation maps to codes 0 and 127.
WINDOWS = {"none": (DB_FLOOR, DB_CEIL), "band-mean": (BAND_MEAN_FLOOR, BAND_MEAN_CEIL),
           "band-floor": (BAND_FLOOR_FLOOR, BAND_FLOOR_CEIL)}


class AudioError(ValueError):
    """An audio file that cannot be turned into features, with the fix."""


def check_normalisation(normalisation: str) -> str:
    """Return ``normalisation`` if it is one of :data:`NORMALISATIONS`, else raise.

    Raises
    ------
    ValueError
        Naming the value and the known ones.
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown feature normalisation {normalisation!r}; choose one of "
                         f"{', '.join(map(repr, NORMALISATIONS))}")
    return normalisation


def input_quant_spec(normalisation: str = "none") -> dict:
    """Describe the input features and their quantisation for the NetSpec.

    Parameters
    ----------
    normalisation : str
        One of :data:`NORMALISATIONS`. ``"none"`` gives exactly the
        description NetSpecs have always held (no ``normalisation`` key), so
        the shipped NetSpec and every features cache key stay as they were.

    Returns
    -------
    dict
        JSON-serialisable description: how the float log-mel (dB) is computed
        and how it maps to int8 ``q = clip(floor((db - db_floor) * scale +
        0.5), qmin, qmax)``; the float model's input is ``q / qmax``. With
        another normalisation, ``normalisation`` names it and ``db_floor`` /
        ``db_ceil`` are its window (:data:`WINDOWS`, dB relative to each
        band's mean or floor).
    """
    if check_normalisation(normalisation) == "none":
        return _logmel_quant_spec()
    floor, ceil = WINDOWS[normalisation]
    return {**_logmel_quant_spec(), "normalisation": normalisation,
            "db_floor": floor, "db_ceil": ceil}


def normalisation_of(quant: dict) -> str:
    """The feature normalisation a NetSpec's ``input.quant`` records ("none" when absent).

    Raises
    ------
    ValueError
        When the recorded value is not one of :data:`NORMALISATIONS` (a NetSpec
        written by a newer cosparse, or edited by hand).
    """
    value = quant.get("normalisation", "none") if isinstance(quant, dict) else "none"
    if value not in NORMALISATIONS:
        known = ", ".join(map(repr, NORMALISATIONS))
        raise ValueError(f"the NetSpec's input.quant.normalisation is {value!r}, which this "
                         f"cosparse does not know (it knows {known}); use a cosparse that "
                         f"wrote it, or export the model again")
    return value


def _logmel_quant_spec() -> dict:
    return {
        "kind": "logmel_db",
        "sample_rate": SAMPLE_RATE,
        "n_mels": N_MELS,
        "n_frames": N_FRAMES,
        "n_fft": N_FFT,
        "hop_length": HOP,
        "db_floor": DB_FLOOR,
        "db_ceil": DB_CEIL,
        "scale": SCALE,
        "zero_point": 0,
        "qmin": QMIN,
        "qmax": QMAX,
        "rounding": "half_up",
        "digital_silence": "flat_0db",
    }


# --------------------------------------------------------------------------
# Reading audio
# --------------------------------------------------------------------------

def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file as float32 [samples, channels]."""
    import soundfile as sf

    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file; name the .wav files "
                         f"(e.g. {path}/*.wav) or use --dataset for a GSC-layout folder")
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError, TypeError, ValueError, OverflowError,
            MemoryError) as err:
        raise AudioError(
            f"{path}: not a readable audio file ({err}); give a WAV/FLAC file, "
            "e.g. convert it with `sox in.mp3 -r 16000 -c 1 out.wav`") from None
    _check_complete(path, data)
    return data, rate


def _check_complete(path: Path, data: np.ndarray):
    """Refuse a RIFF WAV whose data chunk is shorter than its header says.

    libsndfile reads what is there without a word, so a clip cut short by a
    failed copy would silently become a shorter clip padded with silence.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk, length = struct.unpack("<4sI", handle.read(8))
            if chunk == b"data":
                available = size - offset - 8
                if length != 0xFFFFFFFF and length > available:
                    frames = data.shape[0]
                    raise AudioError(
                        f"{path}: is truncated: its header promises {length} bytes of "
                        f"samples but the file holds {available} ({frames} frames); "
                        f"re-copy or re-export the file")
                return
            offset += 8 + length + (length & 1)


def _to_mono(data: np.ndarray, path: Path, convert: bool) -> np.ndarray:
    """Average the channels when allowed; the model has one input channel."""
    if data.shape[1] == 1:
        return data[:, 0]
    if not convert:
        raise AudioError(
            f"{path}: has {data.shape[1]} channels, expected 1 (mono); pass "
            "convert=True (CLI --convert) to average the channels, or run "
            "`sox in.wav -c 1 out.wav`")
    return data.mean(axis=1, dtype=np.float32)


def _to_rate(audio: np.ndarray, rate: int, path: Path, convert: bool) -> np.ndarray:
    """Resample to 16 kHz when allowed; the mel filters assume 16 kHz."""
    if rate == SAMPLE_RATE:
        return audio
    if not convert:
        raise AudioError(
            f"{path}: sample rate is {rate} Hz, expected {SAMPLE_RATE} Hz; pass "
            "convert=True (CLI --convert) to resample, or run "
            f"`sox in.wav -r {SAMPLE_RATE} out.wav`")
    import librosa

    return librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE,
                            res_type="soxr_hq").astype(np.float32)


def _to_length(audio: np.ndarray, path: Path, convert: bool) -> np.ndarray:
    """Zero-pad short clips at the end; crop long ones only when allowed."""
    n = audio.shape[0]
    if n < CLIP_SAMPLES:
        return np.pad(audio, (0, CLIP_SAMPLES - n))
    if n > CLIP_SAMPLES:
        if not convert:
            raise AudioError(
                f"{path}: is {n / SAMPLE_RATE:.3f} s long ({n} samples), the "
                f"model takes at most 1 s ({CLIP_SAMPLES} samples); pass "
                "convert=True (CLI --convert) to keep the centred second, or "
                "cut it with `sox in.wav out.wav trim START 1`")
        start = (n - CLIP_SAMPLES) // 2
        return audio[start:start + CLIP_SAMPLES]
    return audio


def load_wav(path: str | os.PathLike, *, convert: bool = False) -> np.ndarray:
    """Load one clip as exactly 1 s of 16 kHz mono float32 audio.

    Parameters
    ----------
    path : path-like
        Audio file (anything libsndfile reads: WAV, FLAC, ...).
    convert : bool
        If False (default) a file that is not 16 kHz mono and at most 1 s is
        an error, so that nothing is changed silently.  If True: resample to
        16 kHz (soxr, high quality), average the channels, and keep the
        centred 1 s of a longer clip.

    Returns
    -------
    numpy.ndarray
        float32 [16000]; shorter clips are zero-padded at the end.

    Raises
    ------
    AudioError
        Missing, unreadable or truncated file, a directory, no samples,
        NaN/inf samples, or (without ``convert``) wrong rate, several
        channels, longer than 1 s, float samples beyond full scale.
    """
    path = Path(path)
    data, rate = _read(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples; record or pick another clip")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: holds NaN or infinite samples; the file is "
                         "corrupt, re-export it as 16-bit PCM")
    peak = float(np.abs(data).max())
    if peak > FULL_SCALE:
        if not convert:
            raise AudioError(
                f"{path}: holds samples of magnitude up to {peak:.3g}, beyond full scale "
                f"[-1, 1] (a float file); pass convert=True (CLI --convert) to clip them to "
                f"full scale, or re-export it normalised")
        data = np.clip(data, -FULL_SCALE, FULL_SCALE)
    audio = _to_mono(data, path, convert)
    audio = _to_rate(audio, rate, path, convert)
    return np.ascontiguousarray(_to_length(audio, path, convert), dtype=np.float32)


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------

def logmel(audio: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram in dB relative to the clip's maximum.

    ``librosa.feature.melspectrogram(y, sr=16000, n_mels=32)`` (n_fft 2048,
    hop 512, centred frames, so 32 frames for 16000 samples) followed by
    ``librosa.power_to_db(S, ref=np.max)`` (top_db 80): values lie in
    [-80, 0] dB and the loudest cell is 0 dB, so the features do not depend
    on the recording level.

    Digital silence is defined: when no mel cell has power above 1e-10
    (librosa's ``amin``, e.g. all-zero audio) every cell equals the loudest
    one, so relative to the maximum its spectrum is flat at 0 dB, which
    quantises to 127 everywhere: the image of a flat noise floor, which the
    model learnt as "silence" from its noise windows (docs/data.md). (An
    all-zero image, -80 dB, is not something the model was trained on: the
    shipped model called it "up".)

    Parameters
    ----------
    audio : numpy.ndarray
        float [16000], finite (see :func:`load_wav`).

    Returns
    -------
    numpy.ndarray
        float32 [32 mels, 32 frames].
    """
    import librosa

    audio = np.asarray(audio)
    if audio.shape != (CLIP_SAMPLES,):
        raise ValueError(f"audio has shape {audio.shape}, expected ({CLIP_SAMPLES},): "
                         "1 s at 16 kHz mono; load it with load_wav()")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio has dtype {audio.dtype}, expected float in [-1, 1]; "
                         "load it with load_wav()")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinite samples")
    power = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=SAMPLE_RATE,
                                           n_mels=N_MELS, n_fft=N_FFT, hop_length=HOP)
    return power_to_logmel(power)


def power_to_logmel(power: np.ndarray) -> np.ndarray:
    """dB relative to the maximum of a mel power spectrogram ``[32, 32]``: :func:`logmel`'s
    second half (digital silence flat at 0 dB, the 80 dB ``top_db`` floor)."""
    import librosa

    if power.max() <= POWER_AMIN:
        return np.full((N_MELS, N_FRAMES), DB_CEIL, dtype=np.float32)
    db = librosa.power_to_db(power, ref=np.max, amin=POWER_AMIN,
                             top_db=DB_CEIL - DB_FLOOR)
    return db.astype(np.float32)


def normalise(db: np.ndarray, normalisation: str = "none") -> np.ndarray:
    """Apply a per-band normalisation to a dB log-mel ``[32 mels, 32 frames]`` (float64).

    ``"none"`` returns the log-mel unchanged; ``"band-mean"`` subtracts from
    each mel band its mean over the frames: ``db[b, t] - mean_t db[b, t]``;
    ``"band-floor"`` its 10th percentile over the frames (numpy's linear
    interpolation), an estimate of the band's noise floor that speech frames
    hardly move. A fixed gain per band (``db[b, t] + g[b]``, any ``g``: an
    equaliser, a spectral tilt, the clip-maximum reference of
    :func:`logmel`) cancels exactly, as in cepstral mean normalisation, as
    long as no cell sits on the -80 dB floor before or after the gain.
    """
    db = np.asarray(db, dtype=np.float64)
    if check_normalisation(normalisation) == "band-mean":
        return db - db.mean(axis=1, keepdims=True)
    if normalisation == "band-floor":
        return db - np.percentile(db, BAND_FLOOR_PERCENTILE, axis=1, keepdims=True)
    return db


def quantise_features(db: np.ndarray, normalisation: str = "none") -> np.ndarray:
    """Quantise a dB log-mel to int8 [1, 32, 32] in [0, 127].

    ``"none"``: ``q = clip(floor((db + 80) * 127 / 80 + 0.5), 0, 127)``:
    round half up, computed in float64 so -80 dB is exactly 0 and 0 dB
    exactly 127. ``"band-mean"``: ``z = normalise(db, "band-mean")``, ``q =
    clip(floor((z + 30) * 127 / 80 + 0.5), 0, 127)``: -30 dB below the band's
    mean is 0, the mean 48, +50 dB above it 127; beyond is clipped
    (:data:`BAND_MEAN_FLOOR`). Digital silence (flat 0 dB) becomes 48
    everywhere. ``"band-floor"``: the same with its window, -5 dB below the
    band's floor is 0, +75 dB above it 127 (digital silence: 8).
    """
    floor = WINDOWS[check_normalisation(normalisation)][0]
    db = np.asarray(db, dtype=np.float64)
    if db.shape != (N_MELS, N_FRAMES):
        raise ValueError(f"log-mel has shape {db.shape}, expected ({N_MELS}, {N_FRAMES})")
    if np.isnan(db).any():
        raise ValueError("log-mel holds NaN; cannot quantise")
    q = np.floor((normalise(db, normalisation) - floor) * SCALE + 0.5)
    return np.clip(q, QMIN, QMAX).astype(np.int8).reshape(FEATURE_SHAPE)


def dequantise_features(q: np.ndarray) -> np.ndarray:
    """The float model's input: ``q / 127`` in [0, 1], float32, same shape.

    Training the float model on exactly these values makes the input
    quantisation lossless between the float and the integer model.
    """
    return (np.asarray(q, dtype=np.float32) / np.float32(QMAX)).astype(np.float32)


def audio_to_features(audio: np.ndarray, normalisation: str = "none") -> np.ndarray:
    """int8 [1, 32, 32] features of 1 s of float audio (:data:`NORMALISATIONS`)."""
    return quantise_features(logmel(audio), normalisation)


def wav_to_features(path: str | os.PathLike, *, convert: bool = False,
                    normalisation: str = "none") -> np.ndarray:
    """int8 [1, 32, 32] features of one audio file (policies of :func:`load_wav`).

    Any error is an :class:`AudioError` naming the file.
    """
    check_normalisation(normalisation)
    audio = load_wav(path, convert=convert)
    try:
        return audio_to_features(audio, normalisation)
    except ValueError as error:
        raise AudioError(f"{path}: {error}") from None


def features_batch(paths: Sequence[str | os.PathLike] | Iterable, *,
                   convert: bool = False, progress: bool = True,
                   normalisation: str = "none") -> np.ndarray:
    """int8 [n, 1, 32, 32] features of several files, with a progress bar.

    BLAS is held to one thread meanwhile: the mel matmul is tiny and a
    multithreaded BLAS on a busy machine made it about 50x slower.
    """
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    paths = list(paths)
    out = np.zeros((len(paths),) + FEATURE_SHAPE, dtype=np.int8)
    with threadpool_limits(1):
        for i, path in enumerate(tqdm(paths, desc="features", unit="clip",
                                      disable=not progress)):
            out[i] = wav_to_features(path, convert=convert, normalisation=normalisation)
    return out


def validate_features(x: np.ndarray) -> np.ndarray:
    """Check user-supplied features and return them as int8 [n, 1, 32, 32].

    Accepts [1, 32, 32] (one clip), [n, 1, 32, 32] or [n, 32, 32], of any
    integer or float dtype whose values are whole numbers in [0, 127], so a
    features .npy saved by any tool is taken as long as nothing would change.

    Raises
    ------
    ValueError
        Naming the shape or dtype found and what was expected, NaN, values
        that are not whole numbers, or values outside [0, 127].
    """
    x = np.asarray(x)
    expected = f"expected [1, {N_MELS}, {N_FRAMES}], [n, 1, {N_MELS}, {N_FRAMES}] or [n, {N_MELS}, {N_FRAMES}]"
    if x.shape == FEATURE_SHAPE:
        x = x[None]
    elif x.ndim == 3 and x.shape[1:] == (N_MELS, N_FRAMES):
        x = x[:, None]
    elif not (x.ndim == 4 and x.shape[1:] == FEATURE_SHAPE):
        raise ValueError(f"features have shape {list(x.shape)}, {expected}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"features have dtype {x.dtype}, expected int8 (or whole "
                         "numbers in [0, 127]) of shape [n, 1, 32, 32]")
    if np.issubdtype(x.dtype, np.floating):
        if np.isnan(x).any():
            raise ValueError(f"features of shape {list(x.shape)} hold NaN; expected int8 in [0, 127]")
        if not np.all(x == np.round(x)):
            raise ValueError(f"features of shape {list(x.shape)} and dtype {x.dtype} hold "
                             "non-integer values; expected int8 in [0, 127] (quantise with "
                             "quantise_features)")
    if x.size and (x.min() < QMIN or x.max() > QMAX):
        raise ValueError(f"features of shape {list(x.shape)} hold values in "
                         f"[{x.min()}, {x.max()}], expected [{QMIN}, {QMAX}]")
    return np.ascontiguousarray(x, dtype=np.int8)
