"""Background-noise generators for the synthetic data set.

Each returns float32 audio at 16 kHz with unit RMS (the caller sets the
level), deterministic from the numpy Generator it is given.  They stand in
for the kinds of noise in GSC's ``_background_noise_`` folder: white, pink,
brown ("colored" noise), running tap, machine hum, and speech babble.
"""
from __future__ import annotations

import numpy as np

RATE = 16000


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    return (x / rms if rms > 0 else x).astype(np.float32)


def _shaped(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    spectrum[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n))


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Flat-spectrum Gaussian noise."""
    return _unit_rms(rng.standard_normal(n))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: equal power per octave, like many natural sounds."""
    return _shaped(n, rng, 1.0)


def brown(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f^2 noise: rumble, most power in the lowest mel bands."""
    return _shaped(n, rng, 2.0)


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    spectrum[(freqs < lo) | (freqs > hi)] = 0.0
    return np.fft.irfft(spectrum, len(x))


def running_tap(n: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise (about 0.8-5 kHz) with a slow random swell and droplets."""
    lo, hi = rng.uniform(600, 1200), rng.uniform(3500, 6000)
    hiss = _band(rng.standard_normal(n), lo, hi)
    t = np.arange(n) / RATE
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
    drops = np.zeros(n)
    drops[rng.integers(0, n, size=max(1, n // 800))] = rng.uniform(2, 8, size=max(1, n // 800))
    drops = _band(np.convolve(drops, np.exp(-np.arange(160) / 30.0))[:n], 1500, 7000)
    return _unit_rms(hiss * swell + drops)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains/machine hum: a 50 or 60 Hz tone with decaying random harmonics."""
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    t = np.arange(n) / RATE
    x = np.zeros(n)
    for h in range(1, 16):
        x += rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3))
    return _unit_rms(x + 0.05 * pink(n, rng))


def babble(n: int, rng: np.random.Generator, speech: list[np.ndarray]) -> np.ndarray:
    """Several talkers at once: ``speech`` streams overlaid at random offsets and levels.

    Parameters
    ----------
    speech : list of numpy.ndarray
        Float speech recordings at 16 kHz (any lengths); each is looped to
        ``n`` samples from a random start.
    """
    x = np.zeros(n)
    for stream in speech:
        looped = np.resize(np.roll(stream, -int(rng.integers(len(stream)))), n)
        x += rng.uniform(0.5, 1.0) * looped / (np.sqrt(np.mean(looped ** 2)) + 1e-9)
    return _unit_rms(x)


#: Generators that need nothing but a Generator; babble also needs speech.
SIMPLE = {"white": white, "pink": pink, "brown": brown, "running_tap": running_tap,
          "hum": hum}
