"""Gender of a voice from two physical cues: how high it is (F0) and how long its vocal tract is.

F0 alone leaves a band (about 145-180 Hz) where low women and high men meet; a listener then
hears the *resonances*: adult male vocal tracts are ~15-20 % longer, so their formants sit lower
(Fitch & Giedd 1999; Pisanski et al. 2014). The tract length comes from the spacing of F2-F4 in a
uniform-tube model, ``F_i = (2i - 1) c / 4L`` (Reby & McComb 2003), least squares over the
clip's median formants; F1 is left out because it moves most with the vowel.

The classifier is a two-feature logistic regression (F0 in semitones, tract length in cm), so
three numbers. They are *fitted*, never hand-set: ``scripts/fit_gender_model.py`` generates
espeak-ng speech (the train voice family only) with F0 set both as the style generator's bands set
it and as shifts around each voice's own pitch, reports accuracy with whole voices held out, and
writes :mod:`pipeline.gender_params`. When no plausible formants are found the F0-only model (also
fitted there) is used.
"""

from __future__ import annotations

import math

import numpy as np

from fsclap.acoustics import PITCH_CEILING_HZ, PITCH_FLOOR_HZ, _as_mono
from pipeline.gender_params import GENDER_MODELS

SPEED_OF_SOUND_CM_S = 35000.0  # warm humid air in the vocal tract
FORMANT_ANALYSIS_RATE = 11025  # formants up to 5 kHz; Praat's Burg cost grows with the rate
FORMANT_CEILING_HZ = 5000.0
FEATURES = ("f0_semitones", "vtl_cm")
# Adult vocal tracts are ~13-20 cm; a "length" outside this span means the formant tracker followed
# harmonics or noise (a buzz without resonances), so the clip falls back to the F0-only model.
PLAUSIBLE_VTL_CM = (12.0, 21.0)


def f0_semitones(f0_hz: float) -> float:
    """F0 in semitones above 100 Hz (the classifier's pitch feature)."""
    return (
        12.0 * math.log2(f0_hz / 100.0) if f0_hz and np.isfinite(f0_hz) and f0_hz > 0 else math.nan
    )


def median_formants(audio: np.ndarray, sr: int) -> np.ndarray:
    """Median F1-F4 (Hz) over the voiced frames of a clip (Praat Burg); NaN where not found."""
    import parselmouth
    import soxr

    audio = _as_mono(audio)
    if sr != FORMANT_ANALYSIS_RATE:
        audio, sr = soxr.resample(audio, sr, FORMANT_ANALYSIS_RATE), FORMANT_ANALYSIS_RATE
    if audio.size < int(0.1 * sr):
        return np.full(4, np.nan)
    sound = parselmouth.Sound(audio, sampling_frequency=float(sr))
    pitch = sound.to_pitch(
        time_step=0.01, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ
    )
    voiced_times = np.asarray(pitch.xs())[pitch.selected_array["frequency"] > 0]
    if voiced_times.size < 5:
        return np.full(4, np.nan)
    formant = sound.to_formant_burg(
        time_step=0.01,
        max_number_of_formants=5,
        maximum_formant=FORMANT_CEILING_HZ,
        window_length=0.025,
    )
    values = np.array(
        [[formant.get_value_at_time(i, t) for i in (1, 2, 3, 4)] for t in voiced_times]
    )
    with np.errstate(all="ignore"):
        return np.nanmedian(values, axis=0) if np.isfinite(values).any() else np.full(4, np.nan)


def tract_length_cm(formants_hz: np.ndarray) -> float:
    """Apparent vocal-tract length from F2-F4 of a uniform tube closed at the glottis; NaN if missing."""
    f = np.asarray(formants_hz, dtype=float)[1:4]
    if f.size < 3 or not np.isfinite(f).all() or (f <= 0).any():
        return math.nan
    odd = np.array([3.0, 5.0, 7.0]) * SPEED_OF_SOUND_CM_S / 4.0
    return float((odd**2).sum() / (odd * f).sum())


def vocal_tract_length(audio: np.ndarray, sr: int) -> float:
    """:func:`tract_length_cm` of the clip's median formants; NaN outside ``PLAUSIBLE_VTL_CM``."""
    length = tract_length_cm(median_formants(audio, sr))
    return length if PLAUSIBLE_VTL_CM[0] <= length <= PLAUSIBLE_VTL_CM[1] else math.nan


def fit_logistic(features: np.ndarray, labels: np.ndarray, c: float = 1.0) -> dict:
    """Fit ``P(female)`` on standardised features; returns the parameters as plain numbers."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=float).reshape(len(labels), -1)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=c).fit((x - mean) / scale, np.asarray(labels) == "female")
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
    }


def female_probability(params: dict, features: list[float]) -> float:
    x = (np.asarray(features, dtype=float) - params["mean"]) / np.asarray(params["scale"])
    return float(1.0 / (1.0 + math.exp(-(float(np.dot(params["coef"], x)) + params["intercept"]))))


def classify_gender(
    f0_hz: float, vtl_cm: float = math.nan, params: dict | None = None
) -> tuple[str | None, float, str]:
    """``(gender, confidence, model)``: the more probable gender, its probability and which fitted
    model gave it (``f0+vtl`` or ``f0``). ``(None, nan, "")`` when F0 is not measurable."""
    if params is None:
        params = GENDER_MODELS
    st = f0_semitones(f0_hz)
    if not np.isfinite(st):
        return None, math.nan, ""
    if vtl_cm is not None and np.isfinite(vtl_cm):
        name, p = "f0+vtl", female_probability(params["f0+vtl"], [st, vtl_cm])
    else:
        name, p = "f0", female_probability(params["f0"], [st])
    return ("female", p, name) if p >= 0.5 else ("male", 1.0 - p, name)
