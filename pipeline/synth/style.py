"""Speech with a controlled speaking style: labels that are audible and measured.

A :class:`StyleLevels` (gender, pitch, speed, energy, emotion) is turned into numeric *targets*
(median F0 in Hz for the voice's gender, syllables per second, active RMS in dBFS) drawn inside
non-overlapping bands. The utterance is synthesised, measured, and re-synthesised with corrected
controls until the measured F0 and rate fall in their bands (at most three passes); the level is
then set by gain. Pitch bands are relative to gender, as in TextrolSpeech's labels.

Emotion is a *nominal* prosody recipe: intonation range (espeak's SSML ``range``), a bias of the
pitch/speed/energy levels drawn with it, and tremolo for fear. Synthesis cannot act, so the
emotion label says which recipe was used, not what a listener would hear; manifests carry
``emotion_nominal=True``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from fsclap.audio import resample
from pipeline.acoustics import Acoustics, count_syllables, measure, semitones, trim_bounds
from pipeline.synth.voices import ENGINE_SAMPLE_RATE, Controls, Voice, sox_effects, synthesize

LEVELS = ("low", "normal", "high")
SPEEDS = ("slow", "normal", "fast")
STYLE_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted")

# Target bands. Gaps between bands leave room for the measurement's own error.
PITCH_BANDS_HZ: dict[tuple[str, str], tuple[float, float]] = {
    ("male", "low"): (80.0, 94.0), ("male", "normal"): (106.0, 124.0), ("male", "high"): (140.0, 165.0),
    ("female", "low"): (158.0, 182.0), ("female", "normal"): (205.0, 235.0), ("female", "high"): (265.0, 305.0),
}
RATE_BANDS_SYL_S: dict[str, tuple[float, float]] = {"slow": (2.6, 3.2), "normal": (3.9, 4.6), "fast": (5.5, 6.5)}
ENERGY_BANDS_DBFS: dict[str, tuple[float, float]] = {"low": (-36.0, -32.0), "normal": (-27.0, -23.0), "high": (-18.0, -15.0)}
PEAK_LIMIT = 0.97
MAX_PASSES = 3
PITCH_TOLERANCE_ST = 0.7  # re-synthesise when the measured F0 is further than this from the target
RATE_TOLERANCE = 0.07  # relative


@dataclass(frozen=True)
class EmotionRecipe:
    """How a nominal emotion is rendered: intonation range, level biases, optional tremolo."""

    pitch_range: str
    pitch_weights: tuple[float, float, float]  # low, normal, high
    speed_weights: tuple[float, float, float]  # slow, normal, fast
    energy_weights: tuple[float, float, float]  # low, normal, high
    tremolo: tuple[float, float] | None = None  # (Hz, depth 0..1)


EMOTION_RECIPES: dict[str, EmotionRecipe] = {
    "neutral": EmotionRecipe("medium", (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    "happy": EmotionRecipe("x-high", (1, 2, 3), (1, 2, 2), (1, 2, 3)),
    "sad": EmotionRecipe("x-low", (3, 2, 1), (4, 2, 1), (4, 2, 1)),
    "angry": EmotionRecipe("high", (1, 2, 2), (1, 2, 3), (1, 1, 5)),
    "fearful": EmotionRecipe("high", (1, 2, 3), (1, 2, 3), (2, 2, 1), tremolo=(6.0, 0.35)),
    "surprised": EmotionRecipe("x-high", (1, 1, 4), (1, 2, 1), (1, 2, 2)),
    "disgusted": EmotionRecipe("low", (3, 2, 1), (3, 2, 1), (1, 3, 1)),
}


@dataclass(frozen=True)
class StyleLevels:
    """Intended attribute levels of one utterance (DESIGN.md's attribute vocabulary)."""

    gender: str
    pitch: str
    speed: str
    energy: str
    emotion: str

    def as_dict(self) -> dict[str, str]:
        return {"gender": self.gender, "pitch": self.pitch, "speed": self.speed, "energy": self.energy,
                "emotion": self.emotion}


@dataclass(frozen=True)
class StyleTargets:
    f0_hz: float
    rate_syl_s: float
    rms_dbfs: float


@dataclass
class Utterance:
    """A rendered utterance: audio at ``sample_rate``, what was asked, what was used, what was measured."""

    audio: np.ndarray
    sample_rate: int
    text: str
    voice: Voice
    levels: StyleLevels
    targets: StyleTargets
    params: dict = field(default_factory=dict)
    acoustics: Acoustics | None = None


def draw_levels(rng: random.Random, gender: str, emotion: str | None = None) -> StyleLevels:
    """Pick an emotion (uniform unless given) and pitch/speed/energy levels biased by its recipe."""
    emotion = emotion or rng.choice(STYLE_EMOTIONS)
    recipe = EMOTION_RECIPES[emotion]
    pitch = rng.choices(LEVELS, weights=recipe.pitch_weights)[0]
    speed = rng.choices(SPEEDS, weights=recipe.speed_weights)[0]
    energy = rng.choices(LEVELS, weights=recipe.energy_weights)[0]
    return StyleLevels(gender, pitch, speed, energy, emotion)


def draw_targets(rng: random.Random, levels: StyleLevels) -> StyleTargets:
    f_lo, f_hi = PITCH_BANDS_HZ[(levels.gender, levels.pitch)]
    r_lo, r_hi = RATE_BANDS_SYL_S[levels.speed]
    e_lo, e_hi = ENERGY_BANDS_DBFS[levels.energy]
    # F0 drawn uniformly on a log scale (perceptually even), rate and level uniformly
    f0 = math.exp(rng.uniform(math.log(f_lo), math.log(f_hi)))
    return StyleTargets(round(f0, 2), round(rng.uniform(r_lo, r_hi), 3), round(rng.uniform(e_lo, e_hi), 2))


def render(voice: Voice, text: str, levels: StyleLevels, targets: StyleTargets, sample_rate: int,
           pad_s: float = 0.08) -> Utterance:
    """Synthesise ``text`` with ``voice`` so that its measured F0/rate/level hit ``targets``.

    The result is trimmed to the speech (plus ``pad_s`` of silence each side) and resampled to
    ``sample_rate``; ``acoustics`` holds the measurements of the final audio.
    """
    if voice.gender != levels.gender:
        raise ValueError(f"voice {voice.voice_id} is {voice.gender}, levels ask for {levels.gender}")
    recipe = EMOTION_RECIPES[levels.emotion]
    controls = Controls(0.0, 1.0, recipe.pitch_range)
    syllables = count_syllables(text)
    audio, params, passes = None, {}, 0
    for passes in range(1, MAX_PASSES + 1):
        audio, params = synthesize(voice, text, controls)
        got = measure(audio, ENGINE_SAMPLE_RATE, text)
        if math.isnan(got.f0_median_hz) or math.isnan(got.speech_rate):
            break  # nothing to correct from; keep what we have and report the measurement
        pitch_error = semitones(targets.f0_hz, got.f0_median_hz)
        rate_ratio = targets.rate_syl_s / got.speech_rate
        if abs(pitch_error) <= PITCH_TOLERANCE_ST and abs(rate_ratio - 1) <= RATE_TOLERANCE:
            break
        if passes < MAX_PASSES:
            controls = Controls(controls.semitones + pitch_error, controls.tempo * rate_ratio, recipe.pitch_range)
        elif abs(pitch_error) > PITCH_TOLERANCE_ST:
            # some variants clamp their pitch: shift what the engine would not give
            cents = int(round(pitch_error * 100))
            audio = sox_effects(audio, ENGINE_SAMPLE_RATE, ["pitch", str(cents)])
            params = {**params, "sox_pitch_cents": params.get("sox_pitch_cents", 0) + cents}
    assert audio is not None
    start, end = trim_bounds(audio, ENGINE_SAMPLE_RATE, pad_s=pad_s)
    audio = audio[start:end] if end > start else audio
    if recipe.tremolo:
        hz, depth = recipe.tremolo
        t = np.arange(audio.size) / ENGINE_SAMPLE_RATE
        audio = audio * (1.0 - depth / 2 + depth / 2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    audio = resample(audio.astype(np.float32), ENGINE_SAMPLE_RATE, sample_rate)
    audio = set_level(audio, sample_rate, targets.rms_dbfs)
    params = {**params, "semitones": round(controls.semitones, 3), "tempo": round(controls.tempo, 4),
              "passes": passes, "syllables_text": syllables}
    utt = Utterance(audio, sample_rate, text, voice, levels, targets, params)
    utt.acoustics = measure(audio, sample_rate, text)
    return utt


def set_level(audio: np.ndarray, sr: int, target_dbfs: float) -> np.ndarray:
    """Scale to ``target_dbfs`` active RMS; peaks over ``PEAK_LIMIT`` are soft-limited (tanh knee)."""
    from pipeline.acoustics import active_rms_dbfs

    current = active_rms_dbfs(audio, sr)
    if math.isnan(current):
        return audio.astype(np.float32)
    out = audio.astype(np.float64) * 10.0 ** ((target_dbfs - current) / 20.0)
    knee = 0.8 * PEAK_LIMIT
    over = np.abs(out) > knee
    if over.any():
        span = PEAK_LIMIT - knee
        out[over] = np.sign(out[over]) * (knee + span * np.tanh((np.abs(out[over]) - knee) / span))
    return out.astype(np.float32)


def apply_reverb(audio: np.ndarray, sr: int, reverberance: int) -> np.ndarray:
    """A room (SoX ``reverb``), same length as the input: used to give drama scenes a space."""
    wet = sox_effects(audio, sr, ["reverb", str(int(reverberance)), "50", "60"])
    return wet[: audio.size] if wet.size >= audio.size else np.pad(wet, (0, audio.size - wet.size))
