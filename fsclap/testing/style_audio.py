"""Voice-like test signals with a known pitch, level and syllable rate (no TTS needed).

A harmonic complex at ``f0_hz`` (1/k harmonic amplitudes, slight vibrato) gated into syllables by
a raised-cosine envelope at ``syllables_per_s``, with short pauses, scaled so that its RMS over
active frames is ``level_dbfs``. Praat tracks its F0, the onset counter finds its syllables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fsclap.audio import write_audio


def voice_like(
    f0_hz: float = 120.0,
    seconds: float = 2.0,
    sr: int = 16000,
    level_dbfs: float = -25.0,
    syllables_per_s: float = 4.0,
    seed: int = 0,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = f0_hz * (1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * syllables_per_s * t)  # one burst per syllable
    envelope = np.clip(envelope * 1.3, 0, 1) ** 0.7
    signal = tone * envelope + rng.normal(0, 1e-4, t.size)
    active = signal[envelope > 0.3]
    rms = np.sqrt(np.mean(active**2)) if active.size else 1.0
    return (signal / rms * 10 ** (level_dbfs / 20)).astype(np.float32)


def write_voice_like(path: str | Path, **kwargs) -> Path:
    sr = kwargs.get("sr", 16000)
    return write_audio(path, voice_like(**kwargs), sr, subtype="PCM_16")
