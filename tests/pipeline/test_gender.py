import math

import numpy as np
import pytest

from pipeline.gender import classify_gender, fit_logistic, tract_length_cm, vocal_tract_length

SR = 16000


def test_tract_length_of_an_ideal_uniform_tube():
    length = 17.5  # cm: F_i = (2i - 1) c / 4L = 500, 1500, 2500, 3500 Hz
    assert tract_length_cm(np.array([500.0, 1500.0, 2500.0, 3500.0])) == pytest.approx(
        length, rel=1e-6
    )
    assert tract_length_cm(np.array([600.0, 1800.0, 3000.0, 4200.0])) == pytest.approx(
        length / 1.2, rel=1e-6
    )
    assert math.isnan(tract_length_cm(np.array([500.0, np.nan, 2500.0, 3500.0])))


def test_a_shorter_tract_is_measured_shorter_on_a_synthetic_vowel():
    # a buzz through parallel resonators at the tube's formants: scaling the formants scales the length
    from scipy import signal

    t = np.arange(SR) / SR
    source = signal.sawtooth(2 * np.pi * 120.0 * t)
    lengths = []
    for scale in (1.0, 1.15):
        out = sum(
            signal.lfilter(*signal.iirpeak(formant, 10.0, fs=SR), source)
            for formant in np.array([500.0, 1500.0, 2500.0, 3500.0]) * scale
        )
        lengths.append(vocal_tract_length(0.3 * out / np.abs(out).max(), SR))
    assert lengths[0] == pytest.approx(17.5, rel=0.05)
    assert lengths[1] == pytest.approx(17.5 / 1.15, rel=0.05)


def test_fitted_logistic_separates_and_gives_calibrated_side():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.0, 1.0, 50), rng.normal(10.0, 1.0, 50)][:, None]
    labels = np.array(["male"] * 50 + ["female"] * 50)
    params = fit_logistic(x, labels)
    assert params["coef"][0] > 0 and len(params["mean"]) == 1
    toy = {"f0": params, "f0+vtl": params}
    # classify_gender takes Hz: 100 Hz = 0 semitones (male side), 100 * 2**(10/12) Hz = 10 (female side)
    assert classify_gender(100.0, params=toy)[:2][0] == "male"
    gender, confidence, model = classify_gender(100.0 * 2 ** (10 / 12), params=toy)
    assert (gender, model) == ("female", "f0") and confidence > 0.95
    assert classify_gender(math.nan, params=toy) == (None, math.nan, "")


def test_a_buzz_without_resonances_has_no_tract_length_and_falls_back_to_f0():
    from fsclap.testing.style_audio import voice_like

    assert math.isnan(vocal_tract_length(voice_like(210.0, 2.0), SR))
    assert classify_gender(210.0, math.nan)[2] == "f0"
