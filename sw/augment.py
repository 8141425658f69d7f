"""Training augmentation that hides which speech engine spoke a clip.

A model trained on one synthesiser learns its cues: espeak-ng puts strong
energy up to 8 kHz where other engines keep most below 4 kHz, and each
engine has its own pitch and formant habits. These transforms take such
cues away in feature space, on the int8 log-mel images
(``cosparse.sw.features``), so they cost microseconds a batch and keep
every feature a valid code in [0, 127]:

- :func:`band_eq`: a random smooth equaliser curve (+-``max_db`` dB over
  the 32 mel bands) and, half the time, a band limit (every band above a
  random cut-off from about 2.5 kHz up falls by 30-60 dB), as different
  microphones and engines shape the spectrum;
- :func:`warp`: speed (frames stretched by 0.85-1.15) and vocal-tract
  length / pitch (mel axis scaled by 0.88-1.12, i.e. every frequency moved
  by the same factor, as a longer or shorter vocal tract does);
- :func:`spec_mask`: SpecAugment-style masks, up to two bands of up to 4
  mel bands and two spans of up to 4 frames set to the -80 dB floor;
- :func:`add_silence`: a share of each batch replaced by digital silence
  and near-silence (a few int16 LSBs of dither or hum) labelled "silence",
  what a muted or idle microphone delivers and the data sets hardly hold.

Features are dB relative to each clip's loudest cell, so after a change of
level the image is shifted back to put its maximum at 0 dB (code 127),
exactly as :func:`cosparse.sw.features.logmel` would have.

Every draw comes from the ``torch.Generator`` given, so a seed fixes the
result (tested). Each transform is applied to a random ``p`` of the batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

QMAX = 127
DB_RANGE = 80.0

__all__ = ["band_eq", "warp", "spec_mask", "augment_batch", "silence_bank", "add_silence"]


def _chosen(batch: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Bool [batch]: which clips a transform applies to (probability ``p`` each)."""
    return torch.rand(batch, generator=generator) < p


def _to_db(q: torch.Tensor) -> torch.Tensor:
    return q.float() * (DB_RANGE / QMAX) - DB_RANGE


def _to_codes(db: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """dB image -> codes with its maximum at 0 dB (127), rounded half up and clipped."""
    db = db - db.amax(dim=(-2, -1), keepdim=True)
    codes = torch.floor((db + DB_RANGE) * (QMAX / DB_RANGE) + 0.5)
    return codes.clamp(0, QMAX).to(dtype)


def band_eq(q: torch.Tensor, generator: torch.Generator, p: float = 0.5,
            max_db: float = 12.0) -> torch.Tensor:
    """Random smooth equaliser and band limit on a random ``p`` of the clips.

    Parameters
    ----------
    q : torch.Tensor
        Integer features ``[B, C, mels, frames]`` in [0, 127].
    generator : torch.Generator
    p : float
        Share of clips changed.
    max_db : float
        Peak gain or cut of the smooth curve (its three cosine terms share it).
    """
    batch, mels = q.shape[0], q.shape[-2]
    pick = _chosen(batch, p, generator)
    # the curve: three cosines over the mel axis, random amplitude and phase
    x = torch.linspace(0, math.pi, mels)
    amp = (torch.rand(batch, 3, generator=generator) * 2 - 1) * (max_db / 3)
    phase = torch.rand(batch, 3, generator=generator) * math.pi
    k = torch.arange(1, 4).float()
    curve = (amp.unsqueeze(-1) * torch.cos(k.view(1, 3, 1) * x.view(1, 1, mels)
                                           + phase.unsqueeze(-1))).sum(1)  # [B, mels]
    # the band limit: half the chosen clips lose the bands above a cut-off
    limit = torch.rand(batch, generator=generator) < 0.5
    cutoff = torch.randint(mels // 2, mels, (batch,), generator=generator)
    drop = 30 + 30 * torch.rand(batch, generator=generator)
    slope = (torch.arange(mels).view(1, mels) >= cutoff.view(batch, 1)).float()
    curve = curve - (limit.float() * drop).view(batch, 1) * slope
    curve = curve * pick.float().view(batch, 1)
    db = _to_db(q) + curve.view(batch, 1, mels, 1)
    out = _to_codes(db.clamp(min=-DB_RANGE - 60), q.dtype)
    # a clip at the -80 dB floor stays there (shifting it up would invent energy)
    floor = (q == 0) & pick.view(batch, 1, 1, 1)
    out = torch.where(floor, torch.zeros_like(out), out)
    return torch.where(pick.view(batch, 1, 1, 1), out, q)


def warp(q: torch.Tensor, generator: torch.Generator, p: float = 0.5,
         speed: float = 0.15, vtlp: float = 0.12) -> torch.Tensor:
    """Stretch time by 1 +- ``speed`` and scale the mel axis by 1 +- ``vtlp``.

    Bilinear resampling of the dB image (frames outside the clip are the
    -80 dB floor, mel bands beyond the top repeat the top band), then the
    maximum is put back at 0 dB.
    """
    batch = q.shape[0]
    pick = _chosen(batch, p, generator)
    t_scale = 1 + (torch.rand(batch, generator=generator) * 2 - 1) * speed
    f_scale = 1 + (torch.rand(batch, generator=generator) * 2 - 1) * vtlp
    t_scale = torch.where(pick, t_scale, torch.ones_like(t_scale))
    f_scale = torch.where(pick, f_scale, torch.ones_like(f_scale))
    db = _to_db(q) + DB_RANGE  # 0 at the floor, so zero padding is the floor
    # mel axis (rows, band 0 lowest): output band m reads input band m * f, anchored at
    # band 0, so f > 1 moves formants and pitch down, f < 1 up (on the mel scale, which
    # is close to what a frequency factor does above about 1 kHz)
    zeros = torch.zeros(batch)
    theta_f = torch.stack([torch.stack([torch.ones(batch), zeros, zeros], 1),
                           torch.stack([zeros, f_scale, f_scale - 1], 1)], 1)
    grid = F.affine_grid(theta_f, list(db.shape), align_corners=True)
    db = F.grid_sample(db, grid, mode="bilinear", padding_mode="border", align_corners=True)
    theta_t = torch.stack([torch.stack([t_scale, zeros, zeros], 1),
                           torch.stack([zeros, torch.ones(batch), zeros], 1)], 1)
    grid = F.affine_grid(theta_t, list(db.shape), align_corners=True)
    db = F.grid_sample(db, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = _to_codes(db - DB_RANGE, q.dtype)
    return torch.where(pick.view(batch, 1, 1, 1), out, q)


def spec_mask(q: torch.Tensor, generator: torch.Generator, p: float = 0.5,
              masks: int = 2, width: int = 4) -> torch.Tensor:
    """Up to ``masks`` mel bands and ``masks`` frame spans of up to ``width`` set to 0 (-80 dB)."""
    batch, mels, frames = q.shape[0], q.shape[-2], q.shape[-1]
    pick = _chosen(batch, p, generator)
    keep = torch.ones(batch, mels, frames, dtype=torch.bool)
    for size, axis in ((mels, 1), (frames, 2)):
        for _ in range(masks):
            w = torch.randint(0, width + 1, (batch,), generator=generator)
            start = (torch.rand(batch, generator=generator) * (size - w + 1)).long()
            pos = torch.arange(size).view(1, size)
            hit = (pos >= start.view(batch, 1)) & (pos < (start + w).view(batch, 1))
            hit = hit & pick.view(batch, 1)
            keep &= ~(hit.unsqueeze(2) if axis == 1 else hit.unsqueeze(1))
    return q * keep.unsqueeze(1).to(q.dtype)


def augment_batch(q: torch.Tensor, generator: torch.Generator, *, eq: float = 0.0,
                  warp_p: float = 0.0, mask: float = 0.0) -> torch.Tensor:
    """The transforms with non-zero probability, in the order eq, warp, mask."""
    if eq > 0:
        q = band_eq(q, generator, eq)
    if warp_p > 0:
        q = warp(q, generator, warp_p)
    if mask > 0:
        q = spec_mask(q, generator, mask)
    return q


def silence_bank(seed: int = 0, count: int = 16, normalisation: str = "none"):
    """int8 features ``[count, 1, 32, 32]`` of digital silence and near-silence.

    The first is all-zero audio (flat 127, docs/data.md "Digital
    silence"; flat 48 with ``normalisation="band-mean"``, 8 with
    ``"band-floor"``); the rest are int16
    recordings of nothing: dither of 1-3 LSBs, some with a mains hum of a few
    LSBs, as an idle 16-bit input delivers. ``normalisation``: the features'
    (:data:`cosparse.sw.features.NORMALISATIONS`).
    """
    import numpy as np

    from .features import audio_to_features

    rng = np.random.default_rng([seed, 0x5113])
    clips = [np.zeros(16000, np.float32)]
    t = np.arange(16000) / 16000
    for i in range(count - 1):
        lsbs = rng.integers(1, 4)
        x = rng.integers(-lsbs, lsbs + 1, 16000).astype(np.float64)
        if i % 2:
            x += rng.uniform(1, 4) * np.sin(2 * np.pi * rng.choice([50, 60]) * t
                                             + rng.uniform(0, 6.3))
        clips.append((np.round(x) / 32768).astype(np.float32))
    return torch.from_numpy(np.stack([audio_to_features(c, normalisation) for c in clips]))


def add_silence(q: torch.Tensor, y: torch.Tensor, bank: torch.Tensor, label: int,
                generator: torch.Generator, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random ``p`` of the batch by random images of ``bank``, labelled ``label``."""
    batch = q.shape[0]
    pick = _chosen(batch, p, generator)
    which = torch.randint(0, bank.shape[0], (batch,), generator=generator)
    q = torch.where(pick.view(batch, 1, 1, 1), bank[which].to(q.dtype), q)
    y = torch.where(pick, torch.full_like(y, label), y)
    return q, y
