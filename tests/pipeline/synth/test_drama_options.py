"""``fsclap synth drama`` options: voice family, speakers per drama, restyled lines."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from fsclap.acoustics import semitones
from fsclap.cli import main
from fsclap.errors import FsclapError
from pipeline.synth import drama as drama_module
from pipeline.synth.drama import (
    DEFAULT_SPEAKERS,
    family_voices,
    generate_dramas,
    load_truth,
    parse_speaker_range,
    plan_dramas,
    render_restyled,
    restyle_shift,
)
from pipeline.synth.style import StyleLevels, draw_targets
from pipeline.synth.voices import Voice


def test_speaker_range_is_respected_and_casts_mix_genders():
    plans = plan_dramas(12, seed=3, speakers=(3, 6))
    counts = [len(d.speakers) for d in plans]
    assert min(counts) >= 3 and max(counts) <= 6 and len(set(counts)) >= 3
    for d in plans:
        assert {s.voice.gender for s in d.speakers} == {"female", "male"}
        assert len({s.voice.voice_id for s in d.speakers}) == len(d.speakers)
        assert all(s.voice.engine == "espeak" for s in d.speakers)  # train family by default
    assert plan_dramas(3, seed=3, speakers=(3, 6)) == plans[:3]
    assert all(len(d.speakers) == 5 for d in plan_dramas(3, seed=1, speakers=(5, 5)))


def test_default_range_keeps_the_historical_casts():
    # the 2-4 draw is unchanged, so existing seeds give the same dramas
    assert [len(d.speakers) for d in plan_dramas(6, seed=0)] == [3, 2, 3, 3, 4, 3]
    assert DEFAULT_SPEAKERS == (2, 4)


def fake_test_family(monkeypatch):
    """A test family the size of the real one (4 female + 2 male; Kokoro speaks Japanese)."""
    voices = [Voice(f"kokoro-f{i}", "kokoro", "female", f"jf_{i}", "ja") for i in range(4)] + [
        Voice("kokoro-m0", "kokoro", "male", "jm_0", "ja"),
        Voice("piper-joe", "piper", "male", "joe", "en-us"),
    ]
    monkeypatch.setattr(
        drama_module, "voice_catalogue", lambda family="train": voices if family == "test" else []
    )
    return voices


def test_a_six_speaker_test_family_drama_uses_every_test_voice(monkeypatch):
    voices = fake_test_family(monkeypatch)
    (drama,) = plan_dramas(1, seed=0, family="test", speakers=(6, 6))
    assert sorted(s.voice.voice_id for s in drama.speakers) == sorted(v.voice_id for v in voices)
    languages = {s.voice.voice_id: drama_module.voice_language(s.voice) for s in drama.speakers}
    assert languages["piper-joe"] == "en" and languages["kokoro-f0"] == "ja"
    for d in plan_dramas(20, seed=1, family="test", speakers=(3, 6)):
        assert {s.voice.gender for s in d.speakers} == {"female", "male"}
        assert sum(s.voice.gender == "male" for s in d.speakers) <= 2


def test_japanese_lines_for_japanese_voices():
    rng = random.Random(0)
    text = drama_module.line_text(rng, "ja")
    assert text and not any(c.isascii() and c.isalpha() for c in text)
    assert drama_module.line_text(random.Random(0), "en").isascii()


def test_bad_options_are_one_line_errors(monkeypatch):
    with pytest.raises(FsclapError, match="voice family"):
        family_voices("neural")
    with pytest.raises(FsclapError, match="2 <= lo <= hi"):
        plan_dramas(1, seed=0, speakers=(4, 3))
    with pytest.raises(FsclapError, match="restyle share"):
        plan_dramas(1, seed=0, restyle=1.5)
    fake_test_family(monkeypatch)
    with pytest.raises(FsclapError, match="not enough for 7 speakers"):
        plan_dramas(1, seed=0, family="test", speakers=(3, 7))
    assert parse_speaker_range("3-6") == (3, 6) and parse_speaker_range("4") == (4, 4)
    for bad in ("three", "3-4-5", "-"):
        with pytest.raises(FsclapError, match="--speakers"):
            parse_speaker_range(bad)


def test_restyle_shift_points_towards_the_level():
    rng = random.Random(0)
    assert all(2.0 <= restyle_shift(rng, "high") <= 5.0 for _ in range(20))
    assert all(-5.0 <= restyle_shift(rng, "low") <= -2.0 for _ in range(20))
    assert {np.sign(restyle_shift(rng, "normal")) for _ in range(40)} == {-1.0, 1.0}


def test_a_restyled_line_still_measures_its_target_pitch():
    voice = next(v for v in family_voices("train") if v.voice_id == "espeak-f3")
    rng = random.Random(2)
    levels = StyleLevels("female", "high", "normal", "normal", "happy")
    targets = draw_targets(rng, levels)
    utt = render_restyled(
        voice, "I never wanted to leave you at the station tonight.", levels, targets, 16000, 4.0
    )
    assert utt.params["restyle_semitones"] == 4.0
    assert utt.targets == targets
    assert (
        abs(semitones(targets.f0_hz, utt.acoustics.f0_median_hz)) < 1.5
    )  # measured on the final audio
    plain = render_restyled(
        voice, "I never wanted to leave you at the station tonight.", levels, targets, 16000, 0.0
    )
    assert "restyle_semitones" not in plain.params


def test_generated_options_are_recorded_and_guard_the_folder(tmp_path):
    out = tmp_path / "d"
    generate_dramas(
        out, dramas=1, episodes=1, seed=2, duration_s=10, workers=0, speakers=(3, 3), restyle=1.0
    )
    (truth,) = load_truth(out)
    assert len(truth["speakers"]) == 3 and all(s["language"] == "en" for s in truth["speakers"])
    assert truth["lines"] and all(abs(line["restyle_semitones"]) >= 2.0 for line in truth["lines"])
    state = json.loads((out / "drama_corpus.json").read_text())
    assert state["speakers"] == [3, 3] and state["restyle"] == 1.0 and state["family"] == "train"
    with pytest.raises(FsclapError, match="restyle=1.0 \\(now 0.0\\)"):
        generate_dramas(
            out, dramas=1, episodes=1, seed=2, duration_s=10, workers=0, speakers=(3, 3)
        )


def test_cli_drama_options(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "drama",
                "--out",
                str(tmp_path),
                "--dramas",
                "1",
                "--episodes",
                "1",
                "--seed",
                "3",
                "--duration",
                "8",
                "--speakers",
                "3",
                "--restyle",
                "0.5",
            ]
        )
        == 0
    )
    assert "1 episodes" in capsys.readouterr().out
    assert len(load_truth(tmp_path)[0]["speakers"]) == 3
    assert main(["synth", "drama", "--out", str(tmp_path / "x"), "--speakers", "6-3"]) == 2
    assert "error:" in capsys.readouterr().err


def test_held_out_engines_get_levels_relative_to_their_own_normal(monkeypatch):
    from pipeline.synth.style import VoiceNormal
    from pipeline.synth.voices import KOKORO_VOICES, voice_catalogue

    # a Japanese voice's normal rate is in morae/s; the English syllable bands would make it crawl
    monkeypatch.setattr(drama_module, "voice_normal", lambda voice: VoiceNormal(250.0, 7.5))
    kokoro = KOKORO_VOICES[0]
    levels = StyleLevels(kokoro.gender, "high", "slow", "normal", "neutral")
    targets = drama_module.line_targets(random.Random(0), kokoro, levels)
    assert 2.0 <= targets.semitones <= 4.5 and targets.f0_hz > 250.0
    assert 0.6 <= targets.tempo <= 0.85 and targets.rate_syl_s == pytest.approx(
        7.5 * targets.tempo, rel=1e-3
    )
    espeak = voice_catalogue("train")[0]
    espeak_levels = StyleLevels(espeak.gender, "high", "slow", "normal", "neutral")
    bands = drama_module.line_targets(random.Random(0), espeak, espeak_levels)
    assert bands.semitones is None and bands == draw_targets(random.Random(0), espeak_levels)
