import math

import numpy as np
import pandas as pd
import pytest

from fsclap.testing.style_audio import voice_like
from pipeline.attributes import (
    DEFAULT_REFERENCES,
    BinningConfig,
    bin_attributes,
    gender_posterior,
    measure_clip,
    speed_values,
    transcript_kind,
    transcript_units,
)
from pipeline.gender_params import GENDER_MODELS

SR = 16000


def f0_boundary_hz() -> float:
    """Where the fitted F0-only model is undecided (P = 0.5)."""
    p = GENDER_MODELS["f0"]
    semitones = p["mean"][0] - p["intercept"] * p["scale"][0] / p["coef"][0]
    return 100.0 * 2 ** (semitones / 12)


def clip_rows(speaker, f0s, rates=None, levels=None, unit="syl/s"):
    n = len(f0s)
    return pd.DataFrame(
        {
            "clip_id": [f"{speaker}-{i}" for i in range(n)],
            "speaker_id": speaker,
            "f0_median_hz": f0s,
            "speech_rate": rates if rates is not None else [4.5] * n,
            "rms_dbfs": levels if levels is not None else [-25.0] * n,
            "speech_rate_unit": unit,
            "clipped_fraction": 0.0,
        }
    )


@pytest.mark.parametrize(
    "f0, gender", [(95, "male"), (120, "male"), (210, "female"), (260, "female")]
)
def test_gender_from_f0_is_confident_far_from_the_boundary(f0, gender):
    got, confidence = gender_posterior(f0)
    assert got == gender and confidence > 0.95


def test_gender_near_the_boundary_is_not_confident_and_nan_is_unknown():
    _, confidence = gender_posterior(160.0)
    assert 0.5 <= confidence < 0.7
    assert gender_posterior(math.nan) == (None, math.nan) or gender_posterior(math.nan)[0] is None
    boundary = f0_boundary_hz()
    frame = clip_rows("s", [boundary, boundary * 0.999, boundary * 1.001])
    out = bin_attributes(frame)
    assert set(out["gender"]) == {"unknown"} and (out["gender_confidence"] < 0.55).all()


def test_measure_clip_reads_pitch_level_and_rate_units():
    audio = voice_like(210.0, 2.5, level_dbfs=-20.0, syllables_per_s=5.0)
    m = measure_clip(audio, SR)
    assert m.f0_median_hz == pytest.approx(210.0, rel=0.02)
    assert m.rms_dbfs == pytest.approx(-20.0, abs=2.0)
    assert m.speech_rate == pytest.approx(5.0, rel=0.15) and m.speech_rate_unit == "onset/s"
    assert m.gender_f0 == "female" and m.gender_f0_confidence > 0.95
    assert m.timebase_s > 0 and m.articulation_rate > 0 and m.nuclei > 0
    assert measure_clip(audio, SR, "こんにちは、げんきですか").speech_rate_unit == "mora/s"
    assert measure_clip(audio, SR, "今天天气真好").speech_rate_unit == "char/s"
    assert measure_clip(audio, SR, "well, hello there").speech_rate_unit == "syl/s"
    assert (
        measure_clip(audio, SR, "123 ...").speech_rate_unit == "onset/s"
    )  # no letters: onsets, noted
    assert transcript_kind("  ") is None


@pytest.mark.parametrize(
    "audio, note",
    [
        (np.zeros(SR, dtype=np.float32), "silent"),
        (np.full(int(0.05 * SR), 0.1, dtype=np.float32), "too short"),
        (np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), "no voiced frames"),
    ],
)
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
    assert out["pitch_z"].iloc[2] == pytest.approx(
        (12 * np.log2(210) - centre)
        / max(1.4826 * np.median(np.abs(12 * np.log2(np.array(f0)) - centre)), 1.0)
    )


def test_a_high_voiced_speaker_is_normal_for_herself_but_high_for_her_gender():
    f0 = [255, 258, 260, 262, 265, 250, 270, 259, 261, 263]
    by_speaker = bin_attributes(clip_rows("bea", f0), BinningConfig(reference="speaker"))
    by_gender = bin_attributes(clip_rows("bea", f0))  # the default
    assert by_speaker["pitch"].iloc[2] == "normal"
    assert (by_gender["pitch"] == "high").all() and (
        by_gender["pitch_ref"] == "default:female"
    ).all()


def test_small_speakers_fall_back_to_the_corpus_group_then_to_defaults():
    big = clip_rows("big", list(np.linspace(100, 140, 40)))
    small = clip_rows("small", [100.0, 140.0]).assign(vtl_cm=18.0)  # a long (male) vocal tract
    out = bin_attributes(
        pd.concat([big, small], ignore_index=True),
        BinningConfig(reference="speaker", min_speaker_clips=8, min_group_clips=30),
    )
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
    assert (out["gender"] == "male").all() and (
        out["gender_source"] == "f0-speaker"
    ).all()  # no formants given
    assert "clip F0 230 Hz says female" in out["gender_conflict"].iloc[-1]
    assert (out["gender_conflict"].iloc[:-1] == "").all()


def rate_rows(speaker, rates, units=None, nuclei=None, timebase_s=None):
    """Clips of one speaker with an articulation rate and optional transcript units: the same content
    (the transcript's units, else 10 nuclei) spoken at each rate, so the timebase is units / rate."""
    n = len(rates)
    units = units if units is not None else [np.nan] * n
    counted = [u if np.isfinite(u) else 10.0 for u in units]
    return pd.DataFrame(
        {
            "clip_id": [f"{speaker}-{i}" for i in range(n)],
            "speaker_id": speaker,
            "f0_median_hz": 200.0,
            "rms_dbfs": -25.0,
            "clipped_fraction": 0.0,
            "speech_rate": rates,
            "articulation_rate": rates,
            "timebase_s": timebase_s or [c / r for c, r in zip(counted, rates)],
            "transcript_units": units,
            "nuclei": nuclei if nuclei is not None else counted,
            "speech_rate_unit": ["syl/s" if np.isfinite(u) else "onset/s" for u in units],
        }
    )


def test_speaker_relative_speed_uses_fixed_log_ratios_around_the_speaker_median():
    # a brisk speaker (normal 6/s) and a slow one (normal 3/s): each one's x0.75 / x1 / x1.33 clips
    brisk = rate_rows("brisk", [6.0 * t for t in [0.75, 1.0, 1.33] * 4])
    slow = rate_rows("slow", [3.0 * t for t in [0.75, 1.0, 1.33] * 4])
    out = bin_attributes(pd.concat([brisk, slow], ignore_index=True))
    assert (out["speed_ref"] == "speaker").all()
    assert list(out["speed"][:3]) == ["slow", "normal", "fast"] == list(out["speed"][12:15])
    # +-0.14 in ln rate is the edge, whatever the speaker's spread (median centre: the lattice fit would lean
    # towards two clips this close to the fast level)
    edge = bin_attributes(
        rate_rows("e", [4.0] * 9 + [4.0 * np.exp(0.13), 4.0 * np.exp(0.15)]),
        BinningConfig(speed_centre="median"),
    )
    assert list(edge["speed"][-2:]) == ["normal", "fast"]


def test_a_speaker_who_is_mostly_normal_is_not_split_into_thirds():
    rates = [5.0, 5.05, 4.95, 5.02, 4.98, 5.01, 4.99, 5.03, 5.0 * 1.33]
    out = bin_attributes(rate_rows("steady", rates))
    assert list(out["speed"]) == ["normal"] * 8 + ["fast"]


def test_without_speaker_ids_speed_falls_back_to_the_corpus_group():
    frame = rate_rows("x", [3.0, 4.0, 6.5]).drop(
        columns=["speaker_id"]
    )  # literature centre: 4 nuclei/s
    out = bin_attributes(frame)
    assert set(out["speed_ref"]) == {"default:onsets"} and list(out["speed"]) == [
        "slow",
        "normal",
        "fast",
    ]
    grouped = bin_attributes(
        rate_rows("x", [4.5 * t for t in [0.75, 1.0, 1.33] * 3]),
        BinningConfig(speed_reference="group"),
    )
    assert set(grouped["speed_ref"]) == {"default:onsets"}


def test_a_transcript_of_another_clip_is_replaced_by_the_nuclei_rate():
    # nine clips whose transcript units match their nuclei, one whose transcript is twice too long
    units = [10.0] * 9 + [20.0]
    frame = rate_rows("t", [5.0] * 9 + [10.0], units=units, nuclei=[10.0] * 10)
    rate, source = speed_values(frame)
    assert list(source[:9]) == ["transcript"] * 9 and source[9] == "nuclei (transcript mismatched)"
    assert rate[9] == pytest.approx(5.0)
    assert bin_attributes(frame)["speed"].iloc[9] == "normal"


def test_transcript_units_mix_syllables_and_letters_for_english_only():
    assert transcript_units("hello there", "en") == pytest.approx(0.5 * (3 + 10 / 3))
    assert transcript_units("我们走吧", "zh") == 4
    assert math.isnan(transcript_units("anything", None))
    assert (
        transcript_kind("きょうはいいてんきですね") == "ja"
        and transcript_kind("今日はいい天気") == "ja"
    )


def test_the_vocal_tract_decides_where_f0_is_ambiguous_and_confidence_says_how_sure():
    boundary = f0_boundary_hz()
    rows = clip_rows("x", [boundary] * 2).drop(columns=["speaker_id"]).assign(vtl_cm=[14.5, 19.0])
    out = bin_attributes(rows)
    assert list(out["gender"]) == ["female", "male"]
    assert (out["gender_confidence"] > 0.8).all() and (out["gender_source"] == "f0+vtl-clip").all()
    # far from the boundary F0 wins whatever the tract, and confidence grows with the distance
    far = bin_attributes(
        clip_rows("y", [boundary / 1.6, boundary / 1.3]).drop(columns=["speaker_id"])
    )
    assert (
        list(far["gender"]) == ["male", "male"]
        and far["gender_confidence"].iloc[0] > far["gender_confidence"].iloc[1]
    )


def test_a_speaker_whose_transcripts_often_miss_gets_nuclei_rates_for_all_clips():
    # units vs nuclei: 4 of 10 transcripts are far off -> none of this speaker's transcripts is used
    units = [10.0] * 6 + [20.0, 5.0, 20.0, 5.0]
    frame = rate_rows("m", [5.0] * 10, units=units, nuclei=[10.0] * 10)
    _, source = speed_values(frame)
    assert set(source[:6]) == {"nuclei (speaker's transcripts mismatched)"}
    assert set(source[6:]) == {"nuclei (transcript mismatched)"}


def test_clips_without_a_speaker_id_are_not_pooled_into_one_speaker():
    frame = rate_rows(
        "s", [5.0] * 4, units=[10.0, 10.0, 20.0, 5.0], nuclei=[10.0] * 4, timebase_s=2.0
    )
    frame["speaker_id"] = None
    rate, source = speed_values(frame)
    assert list(source) == [
        "transcript",
        "transcript",
        "nuclei (transcript mismatched)",
        "nuclei (transcript mismatched)",
    ]
    assert rate[2] == pytest.approx(5.0)


def test_a_speaker_whose_transcript_ratios_scatter_is_not_trusted_even_without_outliers():
    # log ratios within +-0.3 (none beyond x1.4 of the median) but spread far wider than matching text
    ratios = np.array([-0.3, -0.25, -0.2, -0.1, 0.0, 0.0, 0.1, 0.2, 0.25, 0.3])
    frame = rate_rows("w", [5.0] * 10, units=list(10.0 * np.exp(ratios)), nuclei=[10.0] * 10)
    _, source = speed_values(frame)
    assert set(source) == {"nuclei (speaker's transcripts mismatched)"}
    tight = rate_rows("t", [5.0] * 10, units=list(10.0 * np.exp(ratios / 4)), nuclei=[10.0] * 10)
    assert set(speed_values(tight)[1]) == {"transcript"}


def test_the_normal_level_is_found_when_slow_clips_outnumber_normal_ones():
    # ten slow, five normal, three fast clips: the median clip is a slow one, the fitted levels are not fooled
    jitter = [0.0, 0.02, -0.02, 0.01, -0.01]
    tempi = (
        [0.75 * math.exp(jitter[i % 5]) for i in range(10)]
        + [math.exp(j) for j in jitter]
        + [1.33] * 3
    )
    truth = ["slow"] * 10 + ["normal"] * 5 + ["fast"] * 3
    frame = rate_rows("s", [5.0 * t for t in tempi])
    assert list(bin_attributes(frame)["speed"]) == truth
    assert list(bin_attributes(frame, BinningConfig(speed_centre="median"))["speed"]) != truth


def test_a_duration_model_with_a_fixed_overhead_keeps_long_and_short_sentences_normal():
    # each clip lasts 0.2 s x (units + 4) / tempo: a fixed overhead (final lengthening, edges) of four units,
    # so at one tempo a long sentence has more units per second than a short one
    units = [6, 8, 10, 12, 15, 20, 25, 30] + [8, 12, 20] * 2
    tempi = [1.0] * 8 + [0.75] * 3 + [1.33] * 3
    truth = ["normal"] * 8 + ["slow"] * 3 + ["fast"] * 3
    timebase = [0.2 * (u + 4) / t for u, t in zip(units, tempi)]
    frame = rate_rows(
        "s",
        [u / tb for u, tb in zip(units, timebase)],
        units=[float(u) for u in units],
        timebase_s=timebase,
    )
    assert list(bin_attributes(frame)["speed"]) == truth
    assert list(bin_attributes(frame, BinningConfig(speed_length_exponent=1.0))["speed"]) != truth


def test_time_stretched_copies_of_a_sentence_are_slow_and_fast_against_the_speakers_normal_clips():
    import io
    import subprocess

    import librosa
    import soundfile as sf

    sentences = [
        "I never thought I would see you here again.",
        "Please close the door behind you.",
        "The weather was cold and the streets were empty.",
        "Where did you put the keys?",
        "We walked along the river until the sun went down.",
        "That is not what I meant at all.",
        "My brother is coming home tomorrow morning.",
        "Nobody knew the answer to the question.",
    ]
    clips = []
    for text in sentences:
        wav = subprocess.run(
            ["espeak-ng", "-v", "en-us+m3", "-s", "175", "--stdout", text],
            capture_output=True,
            check=True,
        ).stdout
        audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
        clips.append(audio)
    copies = [(0, 0.75), (1, 0.75), (2, 1.3), (3, 1.3)]
    audios = clips + [librosa.effects.time_stretch(clips[i], rate=r) for i, r in copies]
    texts = sentences + [sentences[i] for i, _ in copies]
    for given in (True, False):
        rows = [
            measure_clip(a, sr, t if given else None).to_dict()
            | {"clip_id": f"c{i}", "speaker_id": "m3"}
            for i, (a, t) in enumerate(zip(audios, texts))
        ]
        speed = list(bin_attributes(pd.DataFrame(rows))["speed"])
        assert speed[:8].count("normal") >= 7
        # without a transcript the nuclei of a phase-vocoder speed-up smear into each other: slow copies only
        assert (
            speed[8:] == ["slow", "slow", "fast", "fast"]
            if given
            else speed[8:10] == ["slow", "slow"]
        )
