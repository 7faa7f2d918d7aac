import numpy as np
import pytest

from fsclap.errors import MissingModelError
from fsclap.testing.style_audio import voice_like
from fsclap.testing.tiny_models import write_sensevoice_small_dir
from pipeline.emotion import DEFAULT_BPE, SenseVoiceTagger, check_sensevoice_dir, parse_rich_text


@pytest.fixture(scope="module")
def sensevoice_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sensevoice")
    happy = write_sensevoice_small_dir(
        root / "happy", seed=0, emit=("<|en|>", "<|HAPPY|>", "<|Laughter|>", "<|woitn|>")
    )
    sad = write_sensevoice_small_dir(
        root / "sad", seed=1, emit=("<|zh|>", "<|SAD|>", "<|BGM|>", "<|woitn|>")
    )
    return {"happy": happy, "sad": sad}


@pytest.mark.parametrize(
    "raw, emotion, events, language, text",
    [
        (
            "<|zh|><|NEUTRAL|><|Speech|><|woitn|>欢迎大家来体验",
            "neutral",
            ("Speech",),
            "zh",
            "欢迎大家来体验",
        ),
        ("<|en|><|ANGRY|><|BGM|><|withitn|>Get out!", "angry", ("BGM",), "en", "Get out!"),
        (
            "<|en|><|EMO_UNKNOWN|><|Laughter|><|woitn|>ha ha",
            "unknown",
            ("Laughter",),
            "en",
            "ha ha",
        ),
        ("<|yue|><|FEARFUL|><|Cry|><|woitn|>", "fearful", ("Cry",), "yue", ""),
        ("plain text without tags", "unknown", (), None, "plain text without tags"),
        ("", "unknown", (), None, ""),
    ],
)
def test_parse_rich_text(raw, emotion, events, language, text):
    tags = parse_rich_text(raw)
    assert (tags.emotion, tags.events, tags.language, tags.text) == (
        emotion,
        events,
        language,
        text,
    )


def test_parse_resolves_several_emotion_tags_by_majority_and_notes_odd_tags():
    tags = parse_rich_text(
        "<|en|><|SAD|><|Speech|><|woitn|>a<|en|><|HAPPY|><|Speech|><|woitn|>b<|en|><|SAD|><|Cough|><|woitn|>c<|WHAT|>"
    )
    assert tags.emotion == "sad" and tags.events == ("Speech", "Cough")
    assert "majority SAD" in tags.note and "WHAT" in tags.note


def test_missing_model_dir_or_file_names_what_is_missing(tmp_path, sensevoice_dirs):
    with pytest.raises(MissingModelError, match="SenseVoiceSmall model directory not found"):
        SenseVoiceTagger(tmp_path / "nowhere")
    import shutil

    for name, role in (
        ("model.pt", "weights"),
        (DEFAULT_BPE, "bpe model"),
        ("am.mvn", "cmvn"),
        ("config.yaml", "config"),
    ):
        broken = tmp_path / f"broken-{role.replace(' ', '_')}"
        shutil.copytree(sensevoice_dirs["happy"], broken)
        (broken / name).unlink()
        with pytest.raises(
            MissingModelError, match=f"SenseVoiceSmall {role} \\({name}\\) not found"
        ):
            check_sensevoice_dir(broken)


def test_tiny_sensevoice_runs_the_real_funasr_path(sensevoice_dirs):
    clips = [
        voice_like(200.0, 1.5),
        voice_like(110.0, 2.5, seed=3),
        np.zeros(800, dtype=np.float32),
    ]
    happy = SenseVoiceTagger(sensevoice_dirs["happy"], batch_size=2).tag(clips)
    sad = SenseVoiceTagger(sensevoice_dirs["sad"]).tag(clips)
    assert [t.emotion for t in happy[:2]] == ["happy", "happy"] and happy[0].events == ("Laughter",)
    assert happy[0].language == "en" and happy[0].raw.startswith("<|en|><|HAPPY|><|Laughter|>")
    assert (
        [t.emotion for t in sad[:2]] == ["sad", "sad"]
        and sad[1].events == ("BGM",)
        and sad[1].language == "zh"
    )
    # a clip too short for the front end is not sent to the model: a noted unknown
    assert happy[2].emotion == "unknown" and "shorter than" in happy[2].note
