"""Speech with a controlled speaking style: labels that are audible and measured.

A :class:`StyleLevels` (gender, pitch, speed, energy, emotion) is turned into numeric *targets*
(median F0 in Hz for the voice's gender, syllables per second, active RMS in dBFS) drawn inside
non-overlapping bands. The utterance is synthesised, measured, and re-synthesised with corrected
controls until the measured F0 and rate fall in their bands (at most three passes); the level is
then set by gain. Pitch bands are relative to gender, as in TextrolSpeech's labels.

That is the ``bands`` label mode. The ``relative`` mode labels what an outside tester with another
engine would do: levels are applied relative to the voice's own normal (its median F0 and rate at
default controls, measured once per voice on a few calibration sentences): a pitch shift in
semitones (applied with SoX on every engine, so it is exact) and a tempo factor (the engine's rate)
drawn in per-level ranges, applied in one pass without correction.
Energy is set by gain to the same absolute bands in both modes.

Emotion is a *nominal* prosody recipe: intonation range (espeak's SSML ``range``), a bias of the
pitch/speed/energy levels drawn with it, and tremolo for fear. Synthesis cannot act, so the
emotion label says which recipe was used, not what a listener would hear; manifests carry
``emotion_nominal=True``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from fsclap.acoustics import (
    Acoustics,
    active_rms_dbfs,
    count_syllables,
    measure,
    semitones,
    trim_bounds,
)
from fsclap.audio import resample
from fsclap.errors import FsclapError
from pipeline.synth.sentences import distinct_sentences
from pipeline.synth.voices import ENGINE_SAMPLE_RATE, Controls, Voice, sox_effects, synthesize

LEVELS = ("low", "normal", "high")
SPEEDS = ("slow", "normal", "fast")
STYLE_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted")

# Target bands. Gaps between bands leave room for the measurement's own error.
PITCH_BANDS_HZ: dict[tuple[str, str], tuple[float, float]] = {
    ("male", "low"): (80.0, 94.0),
    ("male", "normal"): (106.0, 124.0),
    ("male", "high"): (140.0, 165.0),
    ("female", "low"): (158.0, 182.0),
    ("female", "normal"): (205.0, 235.0),
    ("female", "high"): (265.0, 305.0),
}
RATE_BANDS_SYL_S: dict[str, tuple[float, float]] = {
    "slow": (2.6, 3.2),
    "normal": (3.9, 4.6),
    "fast": (5.5, 6.5),
}
ENERGY_BANDS_DBFS: dict[str, tuple[float, float]] = {
    "low": (-36.0, -32.0),
    "normal": (-27.0, -23.0),
    "high": (-18.0, -15.0),
}
LABEL_MODES = ("bands", "relative")
# relative mode: shift (semitones) and tempo ranges per level, from the voice's own normal
RELATIVE_PITCH_SEMITONES: dict[str, tuple[float, float]] = {
    "low": (-4.0, -2.5),
    "normal": (-0.7, 0.7),
    "high": (2.5, 4.0),
}
RELATIVE_TEMPO: dict[str, tuple[float, float]] = {
    "slow": (0.70, 0.80),
    "normal": (0.93, 1.07),
    "fast": (1.25, 1.40),
}
CALIBRATION_SENTENCES = 5
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
    """Intended attribute levels of one utterance (the clip manifest's attribute levels in
    docs/design.md)."""

    gender: str
    pitch: str
    speed: str
    energy: str
    emotion: str

    def as_dict(self) -> dict[str, str]:
        return {
            "gender": self.gender,
            "pitch": self.pitch,
            "speed": self.speed,
            "energy": self.energy,
            "emotion": self.emotion,
        }


@dataclass(frozen=True)
class StyleTargets:
    """What the audio should measure. In relative mode also the controls applied to reach it
    (``semitones`` from the voice's default pitch, ``tempo`` factor); ``None`` in bands mode."""

    f0_hz: float
    rate_syl_s: float
    rms_dbfs: float
    semitones: float | None = None
    tempo: float | None = None


@dataclass(frozen=True)
class VoiceNormal:
    """A voice's own normal at default controls: median F0 and rate over the calibration sentences."""

    f0_median_hz: float
    rate_syl_s: float


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
    return StyleTargets(
        round(f0, 2), round(rng.uniform(r_lo, r_hi), 3), round(rng.uniform(e_lo, e_hi), 2)
    )


@cache
def voice_normal(voice: Voice, pitch_range: str = "medium") -> VoiceNormal:
    """Measure ``voice`` at default controls (and intonation ``pitch_range``) on fixed calibration
    sentences in its language (cached per process; synthesis is deterministic, so every process
    gets the same numbers)."""
    language = voice.sentence_language
    texts = distinct_sentences(
        random.Random(f"calibration|{language}"), CALIBRATION_SENTENCES, language
    )
    f0s, syllables, seconds = [], 0.0, 0.0
    for text in texts:
        audio, _ = synthesize(voice, text, Controls(pitch_range=pitch_range))
        got = measure(audio, ENGINE_SAMPLE_RATE, text)
        if math.isnan(got.f0_median_hz) or math.isnan(got.speech_rate):
            continue
        f0s.append(got.f0_median_hz)
        syllables += got.syllables
        seconds += got.speech_s
    if not f0s:
        raise FsclapError(f"voice {voice.voice_id}: no calibration sentence could be measured")
    return VoiceNormal(round(float(np.median(f0s)), 2), round(syllables / seconds, 3))


def draw_relative_targets(
    rng: random.Random, levels: StyleLevels, normal: VoiceNormal
) -> StyleTargets:
    """Relative mode: a shift and a tempo drawn in the levels' ranges, and what they should give."""
    p_lo, p_hi = RELATIVE_PITCH_SEMITONES[levels.pitch]
    t_lo, t_hi = RELATIVE_TEMPO[levels.speed]
    e_lo, e_hi = ENERGY_BANDS_DBFS[levels.energy]
    shift, tempo = round(rng.uniform(p_lo, p_hi), 3), round(rng.uniform(t_lo, t_hi), 4)
    rms = round(rng.uniform(e_lo, e_hi), 2)
    return StyleTargets(
        round(normal.f0_median_hz * 2.0 ** (shift / 12.0), 2),
        round(normal.rate_syl_s * tempo, 3),
        rms,
        semitones=shift,
        tempo=tempo,
    )


def render_relative(
    voice: Voice,
    text: str,
    levels: StyleLevels,
    targets: StyleTargets,
    sample_rate: int,
    pad_s: float = 0.08,
) -> Utterance:
    """Relative mode: synthesise once with the targets' shift and tempo (no measuring loop), then
    trim, add the emotion's tremolo, resample and set the level as :func:`render` does."""
    if voice.gender != levels.gender:
        raise ValueError(
            f"voice {voice.voice_id} is {voice.gender}, levels ask for {levels.gender}"
        )
    if targets.semitones is None or targets.tempo is None:
        raise ValueError(
            "relative rendering needs targets with semitones and tempo (draw_relative_targets)"
        )
    recipe = EMOTION_RECIPES[levels.emotion]
    # espeak's intonation range moves its median F0 too (x-high: about +2.5 semitones); take that
    # out so the pitch level stays a shift from the voice's normal. Other engines ignore the range.
    offset = 0.0
    if voice.engine == "espeak" and recipe.pitch_range != "medium":
        offset = semitones(
            voice_normal(voice, recipe.pitch_range).f0_median_hz, voice_normal(voice).f0_median_hz
        )
    controls = Controls(
        targets.semitones - offset, targets.tempo, recipe.pitch_range, sox_pitch=True
    )
    audio, params = synthesize(voice, text, controls)
    params = {
        **params,
        "semitones": round(controls.semitones, 3),
        "tempo": targets.tempo,
        "passes": 1,
        "range_offset_semitones": round(offset, 3),
        "syllables_text": count_syllables(text),
    }
    return _finish(audio, voice, text, levels, targets, params, sample_rate, pad_s)


def render(
    voice: Voice,
    text: str,
    levels: StyleLevels,
    targets: StyleTargets,
    sample_rate: int,
    pad_s: float = 0.08,
) -> Utterance:
    """Synthesise ``text`` with ``voice`` so that its measured F0/rate/level hit ``targets``.

    The result is trimmed to the speech (plus ``pad_s`` of silence each side) and resampled to
    ``sample_rate``; ``acoustics`` holds the measurements of the final audio.
    """
    if voice.gender != levels.gender:
        raise ValueError(
            f"voice {voice.voice_id} is {voice.gender}, levels ask for {levels.gender}"
        )
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
            controls = Controls(
                controls.semitones + pitch_error, controls.tempo * rate_ratio, recipe.pitch_range
            )
        elif abs(pitch_error) > PITCH_TOLERANCE_ST:
            # some variants clamp their pitch: shift what the engine would not give
            cents = int(round(pitch_error * 100))
            audio = sox_effects(audio, ENGINE_SAMPLE_RATE, ["pitch", str(cents)])
            params = {**params, "sox_pitch_cents": params.get("sox_pitch_cents", 0) + cents}
    assert audio is not None
    params = {
        **params,
        "semitones": round(controls.semitones, 3),
        "tempo": round(controls.tempo, 4),
        "passes": passes,
        "syllables_text": syllables,
    }
    return _finish(audio, voice, text, levels, targets, params, sample_rate, pad_s)


def _finish(
    audio: np.ndarray,
    voice: Voice,
    text: str,
    levels: StyleLevels,
    targets: StyleTargets,
    params: dict,
    sample_rate: int,
    pad_s: float,
) -> Utterance:
    """Trim to the speech, add the emotion's tremolo, resample, set the level, measure."""
    recipe = EMOTION_RECIPES[levels.emotion]
    start, end = trim_bounds(audio, ENGINE_SAMPLE_RATE, pad_s=pad_s)
    audio = audio[start:end] if end > start else audio
    if recipe.tremolo:
        hz, depth = recipe.tremolo
        t = np.arange(audio.size) / ENGINE_SAMPLE_RATE
        audio = audio * (1.0 - depth / 2 + depth / 2 * np.sin(2 * np.pi * hz * t)).astype(
            np.float32
        )
    audio = resample(audio.astype(np.float32), ENGINE_SAMPLE_RATE, sample_rate)
    audio = set_level(audio, sample_rate, targets.rms_dbfs)
    utt = Utterance(audio, sample_rate, text, voice, levels, targets, params)
    utt.acoustics = measure(audio, sample_rate, text)
    return utt


def set_level(audio: np.ndarray, sr: int, target_dbfs: float) -> np.ndarray:
    """Scale to ``target_dbfs`` active RMS; peaks over ``PEAK_LIMIT`` are soft-limited (tanh knee)."""
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
