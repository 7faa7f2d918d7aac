"""Label-preserving audio augmentation for voice invariance (training audio only, never at evaluation).

A model trained on a few generated voices learns their timbre instead of the style the captions state.
These transforms change what a caption never describes — vocal-tract length (formants), microphone /
channel colour (EQ, spectral tilt, band limiting), room (reverberation), background noise — and keep
what it does: F0 (harmonics are never moved: the formant shift warps the spectral *envelope* only),
tempo (every output has the input's length and timing) and loudness (the active-speech level is
restored to the input's at the end).

Everything is numpy/scipy on the waveform, so it works for every backbone, and a pure function of the
given generator: the data loader seeds it per ``(seed, epoch, clip)``.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fsclap.acoustics import active_frames, frame_dbfs
from fsclap.errors import FsclapError


class AugmentConfig(BaseModel):
    """Probabilities and ranges of each transform (each applied independently)."""

    model_config = ConfigDict(extra="forbid")

    formant_p: float = Field(
        0.8, ge=0, le=1, description="Probability of a formant (vocal-tract length) shift."
    )
    formant_ratio: tuple[float, float] = Field(
        (0.84, 1.2), description="Envelope frequency scale (>1: shorter tract)."
    )
    eq_p: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Probability of a random EQ: spectral tilt + a few broad bands.",
    )
    tilt_db_per_octave: float = Field(3.0, ge=0, description="Largest |tilt| around 1 kHz.")
    eq_band_db: float = Field(6.0, ge=0, description="Largest |gain| of each broad EQ band.")
    band_limit_p: float = Field(
        0.3, ge=0, le=1, description="Probability of codec-like low-pass band limiting."
    )
    lowpass_hz: tuple[float, float] = Field((3400.0, 7000.0), description="Low-pass cut-off range.")
    reverb_p: float = Field(
        0.3, ge=0, le=1, description="Probability of synthetic-room reverberation."
    )
    rt60_s: tuple[float, float] = Field(
        (0.1, 0.4),
        description="Reverberation time range (its tail may extend the last syllable by < 0.25 s).",
    )
    noise_p: float = Field(0.4, ge=0, le=1, description="Probability of additive coloured noise.")
    snr_db: tuple[float, float] = Field(
        (15.0, 35.0), description="Speech-to-noise ratio range (active speech level)."
    )

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        for name in ("formant_ratio", "lowpass_hz", "rt60_s", "snr_db"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(
                    f"{name} must be an increasing pair of positive numbers, got ({lo}, {hi})"
                )
        return self


N_FFT = 1024  # 64 ms at 16 kHz: harmonics of F0 >= 60 Hz are resolved, so the cepstral envelope excludes them
HOP = 256
ENVELOPE_QUEFRENCY_S = (
    0.0016  # shortest lifter: below the period of the highest F0 (600 Hz = 1.67 ms)
)


class VoiceAugment:
    """``augment(wave, sample_rate, rng) -> wave`` of the same length, F0 and active level. Picklable."""

    def __init__(self, config: AugmentConfig | None = None):
        self.config = config or AugmentConfig()

    def __call__(self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        x = np.asarray(wave, dtype=np.float64)
        if x.ndim != 1:
            raise FsclapError(f"augmentation needs mono audio, got shape {x.shape}")
        speech = active_frames(frame_dbfs(x, sample_rate))
        level = _level_dbfs(x, sample_rate, speech)
        if x.size < N_FFT or not math.isfinite(level):
            return np.asarray(
                wave, dtype=np.float32
            )  # too short or silent: nothing to preserve or change
        # draw every decision up front, in a fixed order, so the stream does not depend on the input
        formant = rng.uniform(*np.log(cfg.formant_ratio)) if rng.random() < cfg.formant_p else None
        eq = _random_eq_db(rng, cfg) if rng.random() < cfg.eq_p else None
        rt60 = rng.uniform(*cfg.rt60_s) if rng.random() < cfg.reverb_p else None
        room_seed = int(rng.integers(2**31))
        snr = rng.uniform(*cfg.snr_db) if rng.random() < cfg.noise_p else None
        noise_colour = float(rng.choice([0.0, 1.0, 2.0]))  # white, pink, brown
        noise_seed = int(rng.integers(2**31))
        lowpass = (
            float(np.exp(rng.uniform(*np.log(cfg.lowpass_hz))))
            if rng.random() < cfg.band_limit_p
            else None
        )

        if formant is not None or eq is not None:
            x = _reshape_spectrum(
                x, sample_rate, math.exp(formant) if formant is not None else 1.0, eq
            )
        if rt60 is not None:
            x = _reverberate(x, sample_rate, rt60, np.random.default_rng(room_seed))
        if snr is not None:
            x = _add_noise(
                x, sample_rate, snr, level, noise_colour, np.random.default_rng(noise_seed)
            )
        if lowpass is not None and lowpass < 0.45 * sample_rate:
            from scipy.signal import butter, sosfiltfilt

            x = sosfiltfilt(
                butter(8, lowpass, btype="low", fs=sample_rate, output="sos"), x
            )  # zero phase: no delay
        # loudness is a caption attribute: restore the level of the frames that held speech before (noise
        # lifts the pauses above the active-frame threshold, so the active level of the output would not do)
        new_level = _level_dbfs(x, sample_rate, speech)
        if math.isfinite(new_level):
            x = x * 10.0 ** ((level - new_level) / 20.0)
        return x.astype(np.float32)


def _level_dbfs(x: np.ndarray, sr: int, frames: np.ndarray) -> float:
    """RMS level (dBFS) over the given frames of ``fsclap.acoustics.frame_dbfs``; NaN if none."""
    levels = frame_dbfs(x, sr)[: frames.size]
    mask = frames[: levels.size]
    return (
        float(10.0 * np.log10(np.mean(10.0 ** (levels[mask] / 10.0)))) if mask.any() else math.nan
    )


def _random_eq_db(
    rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[float, list[tuple[float, float, float]]]:
    """(tilt dB/octave around 1 kHz, [(centre Hz, width octaves, gain dB), ...])."""
    tilt = rng.uniform(-cfg.tilt_db_per_octave, cfg.tilt_db_per_octave)
    bands = [
        (
            float(np.exp(rng.uniform(np.log(150.0), np.log(6000.0)))),
            rng.uniform(0.4, 1.5),
            rng.uniform(-cfg.eq_band_db, cfg.eq_band_db),
        )
        for _ in range(int(rng.integers(1, 4)))
    ]
    return tilt, bands


def _eq_curve_db(freqs: np.ndarray, eq) -> np.ndarray:
    tilt, bands = eq
    octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
    curve = tilt * octaves
    for centre, width, gain in bands:
        curve = curve + gain * np.exp(
            -0.5 * ((octaves - np.log2(centre / 1000.0)) / (width / 2)) ** 2
        )
    return curve


def _reshape_spectrum(x: np.ndarray, sr: int, ratio: float, eq) -> np.ndarray:
    """Warp the spectral envelope's frequency axis by ``ratio`` and apply an EQ curve, keeping the
    harmonic fine structure (F0) and the phase; same length out."""
    import torch

    window = torch.hann_window(N_FFT, dtype=torch.float64)
    spec = torch.stft(
        torch.from_numpy(x), N_FFT, HOP, window=window, center=True, return_complex=True
    )
    freqs = np.arange(spec.shape[0]) * sr / N_FFT
    log_mag = torch.log(spec.abs() + 1e-9)
    gain_log = torch.zeros_like(log_mag)
    if ratio != 1.0:
        # cepstral envelope per frame: keep quefrencies below ~0.6 of the frame's pitch period (the cepstral
        # peak between the periods of 600 and 60 Hz), so formants are resolved at every F0 but no harmonic is
        cep = torch.fft.irfft(log_mag, n=N_FFT, dim=0)
        q_min, q_max = int(sr / 600), min(int(sr / 60), N_FFT // 2 - 1)
        period = q_min + cep[q_min:q_max].argmax(dim=0)
        keep = (0.6 * period).clamp_min(max(2, int(ENVELOPE_QUEFRENCY_S * sr)))
        q = torch.arange(N_FFT)[:, None]
        cep = cep * ((q < keep) | (q > N_FFT - keep))
        env = torch.fft.rfft(cep, dim=0).real
        bins = np.arange(len(freqs), dtype=np.float64) / ratio  # the envelope at f/ratio moves to f
        lo = np.clip(np.floor(bins).astype(np.int64), 0, len(freqs) - 1)
        hi = np.clip(lo + 1, 0, len(freqs) - 1)
        frac = torch.from_numpy(np.clip(bins - lo, 0.0, 1.0))[:, None]
        gain_log += env[torch.from_numpy(lo)] * (1 - frac) + env[torch.from_numpy(hi)] * frac - env
    if eq is not None:
        gain_log += torch.from_numpy(_eq_curve_db(freqs, eq) * (math.log(10) / 20.0))[:, None]
    y = torch.istft(
        spec * torch.exp(gain_log), N_FFT, HOP, window=window, center=True, length=x.size
    )
    return y.numpy()


def _reverberate(x: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail after a direct path; the tail past the clip's
    end is cut, so timing and length are unchanged."""
    from scipy.signal import fftconvolve

    n = max(2, int(rt60 * sr))
    t = np.arange(n) / sr
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    rir[: int(0.002 * sr)] = 0.0  # first reflections arrive after the direct sound
    rir *= rng.uniform(0.3, 0.8) / max(
        np.sqrt(np.sum(rir**2)), 1e-9
    )  # reverberant energy below the direct path
    rir[0] = 1.0
    return fftconvolve(x, rir)[: x.size]


def _add_noise(
    x: np.ndarray,
    sr: int,
    snr_db: float,
    level_dbfs: float,
    colour: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stationary noise with a 1/f**colour power spectrum, ``snr_db`` below the active speech level."""
    from scipy.fft import next_fast_len

    n = next_fast_len(
        x.size, real=True
    )  # clip lengths are arbitrary; a prime-length FFT is 20x slower
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum *= 1.0 / np.maximum(f, 20.0) ** (colour / 2)
    noise = np.fft.irfft(spectrum, n=n)[: x.size]
    noise *= 10.0 ** ((level_dbfs - snr_db) / 20.0) / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    return x + noise
