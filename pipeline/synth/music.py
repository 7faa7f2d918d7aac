"""Procedural background music and noise for generated drama episodes (numpy only).

The music is a loop-free little score: a four-chord progression in a random key played by a soft
additive-synthesis pad, a bass line, a melody drawn from the key's scale, and drum-like noise
bursts (kick, snare, hi-hat) on a tempo grid. It overlaps speech in frequency (pad and melody sit in
the 200-2000 Hz speech band), so separating speech from it is a real task. Noise is pink noise plus
a faint mains hum, like room tone. Everything is a pure function of the ``numpy`` generator given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {  # scale degrees (0-based) of chord roots
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4)),
}


@dataclass(frozen=True)
class MusicStyle:
    """A drama's musical identity: reused for all its episodes, so the music recurs like a theme."""

    tonic_midi: int
    mode: str
    tempo_bpm: float
    progression: tuple[int, ...]
    pad_brightness: int  # number of harmonics in the pad
    drums: bool

    @classmethod
    def draw(cls, rng: np.random.Generator) -> MusicStyle:
        mode = str(rng.choice(["major", "minor"]))
        progressions = PROGRESSIONS[mode]
        return cls(
            tonic_midi=int(rng.integers(45, 57)),  # A2..G#3
            mode=mode,
            tempo_bpm=float(rng.uniform(70, 120)),
            progression=tuple(progressions[int(rng.integers(len(progressions)))]),
            pad_brightness=int(rng.integers(3, 7)),
            drums=bool(rng.random() < 0.8),
        )


def midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a:
        env[:a] = np.linspace(0, 1, a)
    if r:
        env[n - r :] *= np.linspace(1, 0, r)
    return env


def _tone(freq: float, n: int, sr: int, harmonics: int, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if freq * k > sr / 2.2:
            break
        out += np.sin(2 * np.pi * freq * k * t + phase * k) / k**1.3
    return out


def _add(buffer: np.ndarray, start: int, signal: np.ndarray) -> None:
    end = min(buffer.size, start + signal.size)
    if end > start:
        buffer[start:end] += signal[: end - start]


def make_music(
    duration_s: float, sr: int, style: MusicStyle, rng: np.random.Generator
) -> np.ndarray:
    """``duration_s`` of music at ``sr`` (float32, peak about 0.5; the mixer sets the level)."""
    n = int(round(duration_s * sr))
    out = np.zeros(n)
    scale = MAJOR if style.mode == "major" else MINOR
    beat = 60.0 / style.tempo_bpm
    bar = 4 * beat
    bars = int(np.ceil(duration_s / bar))
    pads: dict[int, np.ndarray] = {}
    for b in range(bars):
        start = int(b * bar * sr)
        degree = style.progression[b % len(style.progression)]
        root = style.tonic_midi + scale[degree % 7]
        chord = [
            root + scale[(degree + k) % 7] - scale[degree % 7] + (12 if (degree + k) >= 7 else 0)
            for k in (0, 2, 4)
        ]
        length = int(bar * sr)
        if degree not in pads:  # the progression repeats: synthesise each chord's pad once
            pad = sum(
                _tone(
                    midi_hz(note + 12), length, sr, style.pad_brightness, rng.uniform(0, 2 * np.pi)
                )
                for note in chord
            )
            pads[degree] = 0.12 * pad * _envelope(length, sr, 0.3 * beat, 0.5 * beat)
        _add(out, start, pads[degree])
        for half in range(2):  # bass on beats 1 and 3
            blen = int(2 * beat * sr)
            bass = _tone(midi_hz(root - 12), blen, sr, 3) * np.exp(-np.arange(blen) / (0.8 * sr))
            _add(out, start + half * blen, 0.25 * bass)
        for step in range(8):  # melody in eighth notes, with rests
            if rng.random() < 0.35:
                continue
            note = (
                style.tonic_midi
                + 24
                + scale[int(rng.integers(7))]
                + (12 if rng.random() < 0.2 else 0)
            )
            mlen = int(beat / 2 * sr * rng.uniform(0.6, 1.0))
            melody = _tone(midi_hz(note), mlen, sr, 2) * _envelope(mlen, sr, 0.01, 0.08)
            _add(out, start + int(step * beat / 2 * sr), 0.10 * melody)
        if style.drums:
            for q in range(4):
                at = start + int(q * beat * sr)
                if q in (0, 2):
                    klen = int(0.25 * sr)
                    t = np.arange(klen) / sr
                    kick = np.sin(
                        2 * np.pi * (50 * t + 70 * (1 - np.exp(-t / 0.03)) * 0.03)
                    ) * np.exp(-t / 0.09)
                    _add(out, at, 0.5 * kick)
                else:
                    slen = int(0.18 * sr)
                    snare = rng.normal(0, 1, slen) * np.exp(-np.arange(slen) / (0.05 * sr))
                    _add(out, at, 0.12 * np.diff(snare, prepend=0.0))
                hlen = int(0.05 * sr)  # hi-hat on the off-beat: differentiated noise = high-passed
                hat = np.diff(rng.normal(0, 1, hlen + 1)) * np.exp(-np.arange(hlen) / (0.012 * sr))
                _add(out, at + int(beat / 2 * sr), 0.05 * hat)
    fade = min(n // 4, int(1.5 * sr))
    if fade:
        out[:fade] *= np.linspace(0, 1, fade)
        out[n - fade :] *= np.linspace(1, 0, fade)
    peak = np.abs(out).max()
    return (0.5 * out / peak if peak > 0 else out).astype(np.float32)


def make_noise(
    duration_s: float, sr: int, rng: np.random.Generator, hum_hz: float = 50.0
) -> np.ndarray:
    """Room tone: pink noise (1/f power, by spectral shaping) plus a faint mains hum."""
    n = int(round(duration_s * sr))
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    pink /= np.sqrt(np.mean(pink**2)) + 1e-12
    t = np.arange(n) / sr
    hum = 0.05 * (np.sin(2 * np.pi * hum_hz * t) + 0.5 * np.sin(2 * np.pi * 2 * hum_hz * t))
    return (0.1 * (pink + hum)).astype(np.float32)
