import hashlib
import random
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from fsclap.acoustics import count_morae
from fsclap.cli import main
from fsclap.errors import FsclapError
from fsclap.manifest import ATTRIBUTE_LEVELS, ClipManifest
from pipeline.synth import generate_style_corpus
from pipeline.synth.style import (
    ENERGY_BANDS_DBFS,
    PITCH_BANDS_HZ,
    RATE_BANDS_SYL_S,
    RELATIVE_PITCH_SEMITONES,
    RELATIVE_TEMPO,
    StyleLevels,
    VoiceNormal,
    draw_targets,
    render,
)
from pipeline.synth.style_corpus import plan_style_corpus
from pipeline.synth.voices import voice_catalogue

N = 30


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("style")
    result = generate_style_corpus(out, n=N, seed=5, workers=2)
    return out, result


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_follows_the_contract(corpus):
    out, result = corpus
    assert result.clips == N and result.failed == 0
    manifest = ClipManifest.read(out / "manifest.parquet")  # validates levels too
    assert len(manifest) == N
    frame = pd.read_parquet(out / "manifest.parquet")
    for col in (
        "audio_path",
        "caption",
        "caption_zh",
        "clip_id",
        "speaker_id",
        "gender",
        "pitch",
        "speed",
        "energy",
        "emotion",
        "split",
        "text",
        "emotion_nominal",
        "f0_median_hz",
        "f0_range_semitones",
        "speech_rate",
        "rms_dbfs",
        "duration_s",
    ):
        assert col in frame.columns, col
    assert not frame["audio_path"].str.startswith("/").any()  # relative to the manifest
    assert frame["emotion_nominal"].all()
    assert set(frame["emotion"]) <= set(ATTRIBUTE_LEVELS["emotion"]) - {"unknown"}
    assert frame["text"].nunique() == N
    assert manifest.problems().empty
    csv = pd.read_csv(out / "manifest.csv")
    assert list(csv["clip_id"]) == list(frame["clip_id"])
    info = sf.info(str(out / frame["audio_path"].iloc[0]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert "nominal" in (out / "README.md").read_text()


def test_splits_are_speaker_disjoint_and_all_present(corpus):
    out, _ = corpus
    frame = pd.read_parquet(out / "manifest.parquet")
    assert set(frame["split"]) == {"train", "val", "test"}
    speakers = {
        s: set(frame.loc[frame["split"] == s, "speaker_id"]) for s in ("train", "val", "test")
    }
    assert not (
        speakers["train"] & speakers["val"]
        or speakers["train"] & speakers["test"]
        or speakers["val"] & speakers["test"]
    )
    assert set(frame["gender"]) == {"female", "male"}


def test_measured_values_fall_in_the_intended_bands(corpus):
    out, _ = corpus
    frame = pd.read_parquet(out / "manifest.parquet")
    in_band = []
    for row in frame.itertuples():
        f_lo, f_hi = PITCH_BANDS_HZ[(row.gender, row.pitch)]
        r_lo, r_hi = RATE_BANDS_SYL_S[row.speed]
        e_lo, e_hi = ENERGY_BANDS_DBFS[row.energy]
        in_band.append(
            f_lo * 0.95 <= row.f0_median_hz <= f_hi * 1.05
            and r_lo * 0.9 <= row.speech_rate <= r_hi * 1.1
            and e_lo - 1.5 <= row.rms_dbfs <= e_hi + 1.5
        )
    assert np.mean(in_band) >= 0.9, frame.loc[
        ~np.array(in_band), ["clip_id", "gender", "pitch", "f0_median_hz"]
    ]


def test_captions_describe_the_labels(corpus):
    out, _ = corpus
    frame = pd.read_parquet(out / "manifest.parquet")
    assert frame["caption"].nunique() == N
    assert all(c.endswith(".") for c in frame["caption"])
    assert all(c.endswith("。") for c in frame["caption_zh"])
    from fsclap.caption_writer import EN

    emotion_words = {w for role in EN["emotion"].values() for words in role.values() for w in words}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, emotion_words)) + r")\b", re.I)
    assert not any(pattern.search(c) for c in frame["caption_no_emotion"])
    assert sum(bool(pattern.search(c)) for c in frame["caption"]) == N


def test_labels_are_audible():
    """Mean measured F0 orders low < normal < high within each gender (female above male), rate orders
    slow < normal < fast and level low < normal < high, across voices."""
    voices = voice_catalogue()
    rng = random.Random(0)
    text = "Please tell Anna that I will be at the station tomorrow."
    f0: dict = {}
    rates, levels = {}, {}
    for gender in ("female", "male"):
        picked = [v for v in voices if v.gender == gender][:2]
        for pitch, speed, energy in zip(
            ("low", "normal", "high"), ("slow", "normal", "fast"), ("high", "low", "normal")
        ):
            for voice in picked:
                style = StyleLevels(gender, pitch, speed, energy, "neutral")
                got = render(voice, text, style, draw_targets(rng, style), 16000).acoustics
                f0.setdefault((gender, pitch), []).append(got.f0_median_hz)
                rates.setdefault(speed, []).append(got.speech_rate)
                levels.setdefault(energy, []).append(got.rms_dbfs)
    mean = {k: np.mean(v) for k, v in f0.items()}
    for gender in ("female", "male"):
        assert mean[(gender, "low")] < mean[(gender, "normal")] < mean[(gender, "high")]
    assert mean[("female", "normal")] > 1.6 * mean[("male", "normal")]
    assert np.mean(rates["slow"]) < np.mean(rates["normal"]) < np.mean(rates["fast"])
    assert np.mean(levels["low"]) + 6 < np.mean(levels["normal"]) < np.mean(levels["high"]) - 5


def test_same_seed_same_bytes_and_prefix_stable(corpus, tmp_path):
    out, _ = corpus
    again = generate_style_corpus(tmp_path / "again", n=8, seed=5, workers=0)
    first = pd.read_parquet(out / "manifest.parquet").head(8)
    second = pd.read_parquet(again.manifest_path)
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second)
    for rel in second["audio_path"]:
        assert digest(out / rel) == digest(tmp_path / "again" / rel)
    other = pd.read_parquet(
        generate_style_corpus(tmp_path / "other", n=8, seed=6, workers=0).manifest_path
    )
    assert list(other["text"]) != list(second["text"])


def test_resume_reuses_finished_clips_and_writes_the_same_manifest(tmp_path):
    out = tmp_path / "c"
    fresh = generate_style_corpus(out, n=6, seed=1, workers=0)
    before = pd.read_parquet(fresh.manifest_path)
    (out / before["audio_path"].iloc[2]).unlink()  # as if killed before this clip was written
    resumed = generate_style_corpus(out, n=6, seed=1, workers=0)
    assert resumed.reused == 5
    pd.testing.assert_frame_equal(before, pd.read_parquet(resumed.manifest_path))


def test_other_seed_in_the_same_folder_is_refused(tmp_path):
    generate_style_corpus(tmp_path, n=2, seed=1, workers=0)
    with pytest.raises(FsclapError, match="seed=1 \\(now 2\\)"):
        generate_style_corpus(tmp_path, n=2, seed=2, workers=0)


def test_a_failing_clip_is_recorded_and_the_rest_written(tmp_path, monkeypatch):
    import pipeline.synth.style as style

    real = style.synthesize

    def flaky(voice, text, controls):
        if "Anna" in text:
            raise RuntimeError("engine crashed")
        return real(voice, text, controls)

    monkeypatch.setattr(style, "synthesize", flaky)
    plans = plan_style_corpus(12, seed=3)
    bad = sum("Anna" in p.text for p in plans)
    assert 0 < bad < 12
    result = generate_style_corpus(tmp_path, n=12, seed=3, workers=0)
    assert result.failed == bad and result.clips == 12 - bad
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert (
        set(failures.columns) >= {"clip_id", "error", "stage"}
        and "engine crashed" in failures["error"].iloc[0]
    )


def test_cli_writes_a_corpus(tmp_path, capsys):
    assert main(["synth", "style", "--out", str(tmp_path / "cli"), "--n", "4", "--seed", "2"]) == 0
    assert "4 clips" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "cli" / "manifest.parquet")) == 4
    assert main(["synth", "style", "--out", str(tmp_path / "cli"), "--n", "4", "--seed", "3"]) == 2


def test_out_must_be_a_folder(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FsclapError, match="not a folder"):
        generate_style_corpus(afile, n=1, seed=0, workers=0)


# --- families and label modes ---------------------------------------------------------------

FAKE_NORMAL = VoiceNormal(200.0, 6.0)


def test_test_family_plan_holds_out_every_clip_and_gives_kokoro_japanese_text():
    normals = {v.voice_id: FAKE_NORMAL for v in voice_catalogue("test")}
    plans = plan_style_corpus(
        24, seed=1, family="test", normals=normals
    )  # relative is the test default
    assert {p.split for p in plans} == {"test"}
    assert {p.label_mode for p in plans} == {"relative"}
    assert {p.voice.voice_id for p in plans} == set(normals) and {
        p.levels.gender for p in plans
    } == {"female", "male"}
    for p in plans:
        assert p.levels.gender == p.voice.gender
        if p.voice.engine == "kokoro":
            assert count_morae(p.text) >= 10 and not re.search(r"[A-Za-z\u4e00-\u9fff]", p.text)
        else:
            assert count_morae(p.text) == 0 and re.search(r"[A-Za-z]", p.text)
        lo, hi = RELATIVE_PITCH_SEMITONES[p.levels.pitch]
        assert lo <= p.targets.semitones <= hi
        lo, hi = RELATIVE_TEMPO[p.levels.speed]
        assert lo <= p.targets.tempo <= hi
        assert p.targets.f0_hz == pytest.approx(200.0 * 2 ** (p.targets.semitones / 12), abs=0.01)
        assert p.targets.rate_syl_s == pytest.approx(6.0 * p.targets.tempo, abs=0.001)
    # clip i does not depend on n
    assert plan_style_corpus(5, seed=1, family="test", normals=normals) == plans[:5]


def test_bad_family_or_label_mode_is_a_clear_error(tmp_path):
    with pytest.raises(FsclapError, match="voice family must be one of"):
        generate_style_corpus(tmp_path / "a", n=2, family="dev")
    with pytest.raises(FsclapError, match="label mode must be one of bands, relative"):
        generate_style_corpus(tmp_path / "b", n=2, label_mode="absolute")
    assert (
        main(["synth", "style", "--out", str(tmp_path / "c"), "--n", "2", "--family", "dev"]) == 2
    )


def test_relative_mode_applies_levels_from_each_voices_own_normal(tmp_path):
    result = generate_style_corpus(tmp_path / "rel", n=20, seed=4, workers=2, label_mode="relative")
    frame = pd.read_parquet(result.manifest_path)
    assert set(frame["label_mode"]) == {"relative"} and set(frame["split"]) == {
        "train",
        "val",
        "test",
    }
    for col in (
        "applied_semitones",
        "applied_tempo",
        "voice_normal_f0_hz",
        "voice_normal_rate",
        "measured_semitones",
        "measured_rate_ratio",
    ):
        assert frame[col].notna().all(), col
    # every clip of a voice shares one normal, measured on the calibration sentences
    assert (frame.groupby("speaker_id")["voice_normal_f0_hz"].nunique() == 1).all()
    shift = frame.groupby("pitch")["measured_semitones"].mean()
    ratio = frame.groupby("speed")["measured_rate_ratio"].mean()
    assert shift["low"] < -1.5 and abs(shift["normal"]) < 1.5 and shift["high"] > 1.5, shift
    assert (
        ratio["slow"] < ratio["normal"] < ratio["fast"]
        and ratio["slow"] < 0.9
        and ratio["fast"] > 1.1
    ), ratio
    # one pass, no correction: what came out follows what was applied, within a sentence's own variation
    assert (frame["measured_semitones"] - frame["applied_semitones"]).abs().median() < 1.0
    assert np.log(frame["measured_rate_ratio"] / frame["applied_tempo"]).abs().median() < 0.15
    assert "Label mode `relative`" in (tmp_path / "rel" / "README.md").read_text()
    with pytest.raises(FsclapError, match="label_mode=relative \\(now bands\\)"):
        generate_style_corpus(tmp_path / "rel", n=20, seed=4, workers=0, label_mode="bands")


@pytest.mark.slow
def test_test_family_corpus_from_the_cli(tmp_path, capsys):
    """Held-out voices (Piper + Kokoro), relative labels, every clip in split test."""
    out = tmp_path / "held-out"
    assert (
        main(["synth", "style", "--out", str(out), "--n", "6", "--seed", "1", "--family", "test"])
        == 0
    )
    assert "6 clips (train 0, val 0, test 6)" in capsys.readouterr().out
    frame = ClipManifest.read(out / "manifest.parquet").frame
    assert set(frame["split"]) == {"test"} and set(frame["label_mode"]) == {"relative"}
    assert {"kokoro", "piper"} <= set(frame["engine"])
    assert (
        frame["measured_rate_ratio"].between(0.5, 1.8).all()
        and frame["measured_semitones"].abs().lt(6).all()
    )
