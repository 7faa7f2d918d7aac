import math
import subprocess

import numpy as np
import pytest

from fsclap.acoustics import (
    active_rms_dbfs,
    count_syllables,
    estimate_syllables,
    f0_stats,
    measure,
    trim_bounds,
)

SR = 16000


def tone(freq_hz, seconds, amp=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def speech(text, wpm=175, variant="m3"):
    import io

    import soundfile as sf

    wav = subprocess.run(
        ["espeak-ng", "-v", f"en-us+{variant}", "-s", str(wpm), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return audio, sr


def test_f0_of_a_pure_tone():
    median, span, voiced = f0_stats(tone(200.0, 1.0), SR)
    assert median == pytest.approx(200.0, rel=0.01)
    assert span == pytest.approx(0.0, abs=0.2)
    assert voiced > 0.9


def test_f0_range_of_a_glide():
    # exponential glide 100 -> 200 Hz: F0 uniform in log, so the 5-95 % span is 0.9 octave = 10.8 semitones
    seconds = 2.0
    t = np.arange(int(seconds * SR)) / SR
    freq = 100.0 * 2 ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    median, span, _ = f0_stats(0.5 * np.sin(phase), SR)
    assert median == pytest.approx(100 * 2**0.5, rel=0.03)
    assert span == pytest.approx(10.8, abs=0.6)


def test_rms_of_a_sine_ignores_pauses():
    sine = tone(300.0, 1.0, amp=0.5)
    expected = 20 * math.log10(0.5 / math.sqrt(2))  # -9.03 dBFS
    assert active_rms_dbfs(sine, SR) == pytest.approx(expected, abs=0.1)
    with_pauses = np.concatenate([np.zeros(SR), sine, np.zeros(2 * SR)])
    assert active_rms_dbfs(with_pauses, SR) == pytest.approx(expected, abs=0.3)


def test_trim_bounds_find_the_signal():
    audio = np.concatenate([np.zeros(SR // 2), tone(200, 1.0), np.zeros(SR)])
    start, end = trim_bounds(audio, SR)
    assert abs(start - SR // 2) <= 0.02 * SR
    assert abs(end - 3 * SR // 2) <= 0.03 * SR
    assert trim_bounds(np.zeros(SR), SR) == (0, 0)


@pytest.mark.parametrize(
    "audio, reason",
    [
        (np.zeros(SR, dtype=np.float32), "silent"),
        (np.zeros(100, dtype=np.float32), "too short"),
        (np.array([], dtype=np.float32), "too short"),
        (np.full(SR, np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_unmeasurable_audio_gives_nan_and_a_reason(audio, reason):
    got = measure(audio, SR, "hello there")
    assert math.isnan(got.f0_median_hz) and math.isnan(got.rms_dbfs) and math.isnan(got.speech_rate)
    assert reason in got.reason


def test_noise_has_no_f0_but_a_level():
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    got = measure(noise, SR)
    assert math.isnan(got.f0_median_hz)
    assert "F0" in got.reason
    assert got.rms_dbfs == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize(
    "text, syllables",
    [
        ("The cat sat on the mat.", 6),
        ("Yesterday I walked to the station.", 9),  # yes-ter-day I walked to the sta-tion
        ("Beautiful", 3),
        ("我们走吧", 4),
        ("", 0),
    ],
)
def test_count_syllables(text, syllables):
    assert count_syllables(text) == syllables


def test_speech_rate_follows_speaking_speed():
    text = "I never thought I would see you here again after all these years."
    slow = measure(*speech(text, wpm=120), text)
    fast = measure(*speech(text, wpm=260), text)
    assert slow.reason is None and fast.reason is None
    assert 2.0 < slow.speech_rate < fast.speech_rate < 9.0
    assert fast.speech_rate / slow.speech_rate == pytest.approx(260 / 120, rel=0.25)


def test_onset_estimate_is_close_to_the_transcript_count():
    text = "Please tell Anna that I will be at the station tomorrow morning."
    audio, sr = speech(text)
    estimated = estimate_syllables(audio, sr)
    assert estimated == pytest.approx(count_syllables(text), rel=0.35)
    # without a transcript the rate comes from the estimate
    assert measure(audio, sr).speech_rate == pytest.approx(
        measure(audio, sr, text).speech_rate, rel=0.35
    )


def test_female_voice_has_higher_f0_than_male():
    text = "We have to go back to the harbour tonight."
    female = measure(*speech(text, variant="f3"), text)
    male = measure(*speech(text, variant="m3"), text)
    assert female.f0_median_hz > 1.5 * male.f0_median_hz


def am_buzz(syllables_per_s, seconds=3.0, f0=150.0, sr=SR):
    """A voiced buzz (harmonics of ``f0``) whose loudness rises and falls ``syllables_per_s`` times a second."""
    from fsclap.testing.style_audio import voice_like

    return voice_like(f0, seconds, sr=sr, syllables_per_s=syllables_per_s)


@pytest.mark.parametrize("rate", [2.5, 4.0, 6.0, 8.0])
def test_syllable_nuclei_count_the_bursts_of_an_amplitude_modulated_buzz(rate):
    from fsclap.acoustics import syllable_nuclei

    assert syllable_nuclei(am_buzz(rate), SR) == pytest.approx(3.0 * rate, abs=1)


def test_articulation_time_leaves_out_pauses_but_not_short_closures():
    from fsclap.acoustics import articulation_seconds

    burst = tone(200.0, 1.0)
    with_pause = np.concatenate([burst, np.zeros(int(0.5 * SR), dtype=np.float32), burst])
    with_closure = np.concatenate([burst, np.zeros(int(0.08 * SR), dtype=np.float32), burst])
    assert articulation_seconds(with_pause, SR) == pytest.approx(2.0, abs=0.05)
    assert articulation_seconds(with_closure, SR) == pytest.approx(2.08, abs=0.05)


def test_rate_timebase_is_the_geometric_mean_and_nan_without_speech():
    from fsclap.acoustics import rate_timebase

    assert rate_timebase(4.0, 1.0) == pytest.approx(2.0)
    assert math.isnan(rate_timebase(0.0, 1.0))


def test_the_articulation_rate_follows_the_tempo_whatever_the_voice():
    from pipeline.attributes import measure_clip

    text = "I never thought I would see you here again after all these years."
    rates = {}
    for variant in ("m3", "f3"):
        for wpm in (130, 175, 233):
            rates[variant, wpm] = measure_clip(
                *speech(text, wpm=wpm, variant=variant), text
            ).articulation_rate
    for variant in ("m3", "f3"):
        assert rates[variant, 130] < rates[variant, 175] < rates[variant, 233]
    # same sentence, same tempo, another voice: the same rate within the speed threshold (x1.15)
    for wpm in (130, 175, 233):
        assert abs(math.log(rates["m3", wpm] / rates["f3", wpm])) < 0.14
