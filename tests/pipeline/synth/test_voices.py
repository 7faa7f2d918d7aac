import numpy as np
import pytest

from pipeline.acoustics import measure
from pipeline.synth.voices import (
    ENGINE_SAMPLE_RATE, PIPER_VOICE, Controls, SynthesisError, Voice, sox_effects, synthesize, voice_catalogue,
)

TEXT = "Where were you last night? I waited at the station for hours."


def test_catalogue_has_both_genders_and_unique_ids():
    voices = voice_catalogue()
    ids = [v.voice_id for v in voices]
    assert len(ids) == len(set(ids))
    assert sum(v.gender == "female" for v in voices) >= 10
    assert sum(v.gender == "male" for v in voices) >= 10
    assert PIPER_VOICE in voices


def test_every_female_voice_is_higher_than_every_male_voice():
    """Gender is real-ish: at default controls every female voice's measured F0 is above every male one's."""
    f0 = {v.voice_id: (v.gender, measure(synthesize(v, TEXT, Controls())[0], ENGINE_SAMPLE_RATE, TEXT).f0_median_hz)
          for v in voice_catalogue()}
    female = [hz for g, hz in f0.values() if g == "female"]
    male = [hz for g, hz in f0.values() if g == "male"]
    assert min(female) > max(male) * 1.25, f0
    assert 150 < np.median(female) < 260 and 80 < np.median(male) < 130


@pytest.mark.parametrize("voice", [voice_catalogue()[2], PIPER_VOICE], ids=lambda v: v.voice_id)
def test_controls_move_pitch_and_rate(voice):
    base = measure(synthesize(voice, TEXT, Controls())[0], ENGINE_SAMPLE_RATE, TEXT)
    moved = measure(synthesize(voice, TEXT, Controls(semitones=4.0, tempo=1.4))[0], ENGINE_SAMPLE_RATE, TEXT)
    shift = 12 * np.log2(moved.f0_median_hz / base.f0_median_hz)
    assert shift == pytest.approx(4.0, abs=1.2)
    assert moved.speech_rate / base.speech_rate == pytest.approx(1.4, rel=0.2)


def test_piper_is_deterministic():
    a, _ = synthesize(PIPER_VOICE, TEXT, Controls(tempo=1.1))
    b, _ = synthesize(PIPER_VOICE, TEXT, Controls(tempo=1.1))
    assert a.tobytes() == b.tobytes()


def test_engine_errors_are_clear():
    with pytest.raises(SynthesisError, match="espeak-ng failed"):
        synthesize(Voice("bad", "espeak", "male", "nosuchvariant", "xx-nope"), TEXT, Controls())
    with pytest.raises(SynthesisError, match="unknown synthesis engine"):
        synthesize(Voice("bad", "festival", "male", "x", "en"), TEXT, Controls())
    with pytest.raises(SynthesisError, match="sox"):
        sox_effects(np.zeros(100, np.float32), 16000, ["nosucheffect"])
