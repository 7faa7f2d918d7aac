import math

import numpy as np
import pandas as pd
import pytest

from fsclap.testing.style_audio import voice_like
from pipeline.attributes import (
    DEFAULT_REFERENCES, BinningConfig, bin_attributes, gender_posterior, measure_clip, transcript_kind,
)

SR = 16000


def clip_rows(speaker, f0s, rates=None, levels=None, unit="syl/s"):
    n = len(f0s)
    return pd.DataFrame({
        "clip_id": [f"{speaker}-{i}" for i in range(n)], "speaker_id": speaker,
        "f0_median_hz": f0s, "speech_rate": rates if rates is not None else [4.5] * n,
        "rms_dbfs": levels if levels is not None else [-25.0] * n, "speech_rate_unit": unit,
        "clipped_fraction": 0.0,
    })


@pytest.mark.parametrize("f0, gender", [(95, "male"), (120, "male"), (210, "female"), (260, "female")])
def test_gender_from_f0_is_confident_far_from_the_boundary(f0, gender):
    got, confidence = gender_posterior(f0)
    assert got == gender and confidence > 0.95


def test_gender_near_the_boundary_is_not_confident_and_nan_is_unknown():
    _, confidence = gender_posterior(160.0)
    assert 0.5 <= confidence < 0.7
    assert gender_posterior(math.nan) == (None, math.nan) or gender_posterior(math.nan)[0] is None
    frame = clip_rows("s", [160.0, 158.0, 162.0])
    assert set(bin_attributes(frame)["gender"]) == {"unknown"}


def test_measure_clip_reads_pitch_level_and_rate_units():
    audio = voice_like(210.0, 2.5, level_dbfs=-20.0, syllables_per_s=5.0)
    m = measure_clip(audio, SR)
    assert m.f0_median_hz == pytest.approx(210.0, rel=0.02)
    assert m.rms_dbfs == pytest.approx(-20.0, abs=2.0)
    assert m.speech_rate == pytest.approx(5.0, rel=0.15) and m.speech_rate_unit == "onset/s"
    assert m.gender_f0 == "female" and m.gender_f0_confidence > 0.95
    assert measure_clip(audio, SR, "今天天气真好").speech_rate_unit == "char/s"
    assert measure_clip(audio, SR, "well, hello there").speech_rate_unit == "syl/s"
    assert measure_clip(audio, SR, "123 ...").speech_rate_unit == "onset/s"  # no letters: onsets, noted
    assert transcript_kind("  ") is None


@pytest.mark.parametrize("audio, note", [
    (np.zeros(SR, dtype=np.float32), "silent"),
    (np.full(int(0.05 * SR), 0.1, dtype=np.float32), "too short"),
    (np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), "no voiced frames"),
])
def test_unmeasurable_clips_give_nan_and_a_note(audio, note):
    m = measure_clip(audio, SR)
    assert note in m.measure_note
    assert math.isnan(m.f0_median_hz) and m.gender_f0 is None


def test_clipped_audio_is_noted_and_its_energy_is_not_binned():
    loud = np.clip(voice_like(120.0, 2.0, level_dbfs=-3.0) * 4, -1.0, 1.0)
    m = measure_clip(loud, SR)
    assert m.clipped_fraction > 0.05 and "clipped" in m.measure_note
    frame = pd.DataFrame([{**m.to_dict(), "clip_id": "c", "speaker_id": None}])
    out = bin_attributes(frame)
    assert out.loc[0, "energy"] == "unknown" and out.loc[0, "pitch"] != "unknown"


def test_speaker_relative_bins_split_a_speaker_into_levels():
    f0 = [200, 205, 210, 215, 220, 160, 165, 170, 280, 290]
    out = bin_attributes(clip_rows("anna", f0), BinningConfig(reference="speaker"))
    assert (out["pitch_ref"] == "speaker").all()
    levels = dict(zip(f0, out["pitch"]))
    assert levels[210] == "normal" and levels[160] == "low" and levels[290] == "high"
    # the z-score is in semitones over the speaker's robust spread
    centre = np.median(12 * np.log2(np.array(f0, dtype=float)))
    assert out["pitch_z"].iloc[2] == pytest.approx((12 * np.log2(210) - centre) / max(
        1.4826 * np.median(np.abs(12 * np.log2(np.array(f0)) - centre)), 1.0))


def test_a_high_voiced_speaker_is_normal_for_herself_but_high_for_her_gender():
    f0 = [255, 258, 260, 262, 265, 250, 270, 259, 261, 263]
    by_speaker = bin_attributes(clip_rows("bea", f0), BinningConfig(reference="speaker"))
    by_gender = bin_attributes(clip_rows("bea", f0))  # the default
    assert by_speaker["pitch"].iloc[2] == "normal"
    assert (by_gender["pitch"] == "high").all() and (by_gender["pitch_ref"] == "default:female").all()


def test_small_speakers_fall_back_to_the_corpus_group_then_to_defaults():
    big = clip_rows("big", list(np.linspace(100, 140, 40)))
    small = clip_rows("small", [100.0, 140.0])
    out = bin_attributes(pd.concat([big, small], ignore_index=True),
                         BinningConfig(reference="speaker", min_speaker_clips=8, min_group_clips=30))
    small_rows = out[out["speaker_id"] == "small"]
    assert (small_rows["pitch_ref"] == "corpus:male").all()
    assert list(small_rows["pitch"]) == ["low", "high"]
    alone = bin_attributes(small)
    assert (alone["pitch_ref"] == "default:male").all()
    centre, spread = DEFAULT_REFERENCES["pitch"]["male"]
    assert alone["pitch_z"].iloc[0] == pytest.approx(12 * np.log2(100 / centre) / spread)


def test_speed_groups_keep_chinese_characters_and_english_syllables_apart():
    zh = clip_rows("zh", [120.0] * 2, rates=[3.0, 6.5], unit="char/s")
    en = clip_rows("en", [120.0] * 2, rates=[3.0, 6.5], unit="syl/s")
    out = bin_attributes(pd.concat([zh, en], ignore_index=True))
    assert set(out["speed_ref"]) == {"default:zh", "default:en"}
    assert list(out["speed"]) == ["slow", "fast", "slow", "fast"]


def test_speaker_gender_wins_over_a_contradicting_clip_and_the_conflict_is_recorded():
    out = bin_attributes(clip_rows("carl", [110, 115, 120, 118, 112, 230]))
    assert (out["gender"] == "male").all() and (out["gender_source"] == "f0-speaker").all()
    assert "clip F0 230 Hz says female" in out["gender_conflict"].iloc[-1]
    assert (out["gender_conflict"].iloc[:-1] == "").all()
