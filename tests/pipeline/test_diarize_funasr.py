"""Paper profile: the real FunASR AutoModel path (Paraformer + fsmn-vad + ct-punc + CAM++) on tiny
random-weight model dirs in the released layout. Random weights give garbage text; the tests
check structure, timing and the file checks, not content."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from fsclap.config import load_settings
from fsclap.errors import FsclapError, MissingModelError
from pipeline.diarize.funasr_backend import (
    FUNASR_MODELS,
    FunasrDiarizer,
    check_model_dir,
    funasr_model_dirs,
    load_automodel,
    required_files,
    split_sentence,
)
from pipeline.segments import SegmentationConfig

SR = 16000


@pytest.fixture(scope="module")
def tiny_funasr_models(tmp_path_factory):
    from fsclap.testing.tiny_models import write_funasr_model_dirs

    root = tmp_path_factory.mktemp("funasr_models")
    write_funasr_model_dirs(root)
    return root


@pytest.fixture
def models_copy(tiny_funasr_models, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_funasr_models, root)
    return root


def speechlike(seconds, f0, rng):
    t = np.arange(int(SR * seconds)) / SR
    voiced = 0.1 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def quiet(seconds, rng):
    return (1e-4 * rng.standard_normal(int(SR * seconds))).astype(np.float32)


def test_released_layout_files_are_resolved(tiny_funasr_models):
    files = {key: required_files(tiny_funasr_models / key) for key in FUNASR_MODELS}
    assert files["paraformer"]["weights"].name == "model.pt"
    assert {"config", "weights", "tokens", "cmvn"} == set(files["paraformer"])
    assert {"config", "weights", "cmvn"} == set(files["fsmn_vad"])
    assert {"config", "weights", "tokens"} == set(files["ct_punc"])
    # CAM++ is released as campplus_cn_common.bin, named by configuration.json
    assert files["campplus"]["weights"].name == "campplus_cn_common.bin"
    assert {"config", "weights"} == set(files["campplus"])


@pytest.mark.parametrize(
    "key,filename",
    [
        ("paraformer", "model.pt"),
        ("paraformer", "tokens.json"),
        ("paraformer", "am.mvn"),
        ("paraformer", "config.yaml"),
        ("fsmn_vad", "am.mvn"),
        ("ct_punc", "tokens.json"),
        ("campplus", "campplus_cn_common.bin"),
    ],
)
def test_missing_file_names_the_file(models_copy, key, filename):
    (models_copy / key / filename).unlink()
    settings = load_settings(overrides={"models_dir": str(models_copy), "profile": "paper"})
    with pytest.raises(MissingModelError, match=filename) as info:
        funasr_model_dirs(settings)
    assert str(models_copy / key / filename) in str(info.value)


def test_missing_dir_and_explicit_model_path(models_copy, tmp_path):
    shutil.rmtree(models_copy / "ct_punc")
    settings = load_settings(overrides={"models_dir": str(models_copy)})
    with pytest.raises(MissingModelError, match="ct-punc model .* directory not found"):
        funasr_model_dirs(settings)
    moved = tmp_path / "elsewhere" / "punc"
    settings = load_settings(
        overrides={"models_dir": str(models_copy), "model_paths": {"ct_punc": str(moved)}}
    )
    with pytest.raises(MissingModelError, match=str(moved)):
        funasr_model_dirs(settings)


class Payload:
    """Runs code when unpickled: what a hostile model.pt would carry."""

    def __reduce__(self):
        return (print, ("unpickled a payload",))


def test_a_model_file_with_code_in_it_is_refused_before_it_runs(models_copy, capsys):
    import torch

    weights = models_copy / "campplus" / "campplus_cn_common.bin"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    torch.save({"state_dict": state, "extra": Payload()}, weights)
    settings = load_settings(overrides={"models_dir": str(models_copy)})
    with pytest.raises(FsclapError, match="is not a plain weights file") as caught:
        load_automodel(settings)
    assert "\n" not in str(caught.value) and "unpickled a payload" not in capsys.readouterr().out


def test_weights_that_do_not_fit_the_config_are_an_error(models_copy):
    config_path = models_copy / "campplus" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["model_conf"]["embedding_size"] = 48  # the saved weights have 32
    config_path.write_text(yaml.safe_dump(config))
    settings = load_settings(overrides={"models_dir": str(models_copy)})
    with pytest.raises(FsclapError, match="does not match its config.yaml"):
        load_automodel(settings)


def test_real_automodel_end_to_end(tiny_funasr_models):
    settings = load_settings(overrides={"models_dir": str(tiny_funasr_models), "profile": "paper"})
    diarizer = FunasrDiarizer(
        settings, segmentation=SegmentationConfig(min_s=0.5, max_s=4.0, merge_gap_s=0.3)
    )
    model = diarizer.model
    # local dirs only: every sub-model was built from the dir we gave it
    assert model.kwargs["model_path"] == str(tiny_funasr_models / "paraformer")
    assert model.vad_kwargs["model_path"] == str(tiny_funasr_models / "fsmn_vad")
    assert model.punc_kwargs["model_path"] == str(tiny_funasr_models / "ct_punc")
    assert model.spk_kwargs["model_path"] == str(tiny_funasr_models / "campplus")

    rng = np.random.default_rng(0)
    audio = np.concatenate(
        [
            quiet(1, rng),
            speechlike(3, 150, rng),
            quiet(3, rng),
            speechlike(5, 240, rng),
            quiet(1, rng),
        ]
    )
    sentences = diarizer.sentences(audio)
    assert sentences, "FunASR returned no sentence_info"
    for s in sentences:
        assert {"start", "end", "text", "spk"} <= set(s)
    segments = diarizer.diarize(audio)
    duration = len(audio) / SR
    assert segments
    assert all(0 <= s.start_s < s.end_s <= duration + 0.05 for s in segments)
    assert all(s.duration_s <= 4.0 + 1e-6 for s in segments)
    assert all(s.speaker.startswith("S") for s in segments)
    assert all(isinstance(s.text, str) or s.text is None for s in segments)
    # speech lies in 1-4 s and 7-12 s: segments start after the first pause and nothing is
    # found inside the 3-s pause (the tiny VAD is an energy detector)
    assert min(s.start_s for s in segments) > 0.5
    assert not any(4.6 < (s.start_s + s.end_s) / 2 < 6.4 for s in segments)

    # CAM++ embeddings of segments through the same loaded model
    embedder = diarizer.embedder()
    clips = [audio[int(s.start_s * SR) : int(s.end_s * SR)] for s in segments[:2]] + [
        np.zeros(SR, np.float32)
    ]
    vectors = embedder.embed(clips)
    assert vectors.shape == (3, embedder.dim) and embedder.dim == 32
    assert np.linalg.norm(vectors[:2], axis=1).min() > 0 and not vectors[2].any()

    # no speech: no segments, no crash
    assert diarizer.diarize(quiet(3, rng)) == []
    assert diarizer.diarize(np.zeros(100, np.float32)) == []


def test_check_model_dir_accepts_a_dir_without_configuration_json(models_copy):
    (models_copy / "fsmn_vad" / "configuration.json").unlink()
    assert check_model_dir("fsmn_vad", models_copy / "fsmn_vad") == models_copy / "fsmn_vad"
    assert required_files(models_copy / "fsmn_vad")["weights"].name == "model.pt"


def test_split_sentence_cuts_long_sentences_at_the_longest_pause_with_text():
    stamps = [[0, 400], [400, 800], [800, 1200], [3000, 3400], [3400, 3800], [3800, 6000]]
    sentence = {"start": 0, "end": 6000, "spk": 1, "text": "我们今天去哪里", "timestamp": stamps}
    # 7 characters but 6 stamps: not aligned, so the parts lose the text
    parts = split_sentence(sentence, max_s=4.0, min_s=1.0)
    assert [(p.start_s, p.end_s) for p in parts] == [(0.0, 2.1), (2.1, 6.0)]
    assert all(p.speaker == "S1" and p.text is None for p in parts)
    sentence["text"] = "我们今天去哪，"
    parts = split_sentence(sentence, max_s=4.0, min_s=1.0)
    assert [p.text for p in parts] == ["我们今", "天去哪，"]
    assert (
        split_sentence({**sentence, "end": 3500}, max_s=4.0, min_s=1.0)[0].text == "我们今天去哪，"
    )


def test_paper_profile_stages_on_tiny_models(tiny_funasr_models, tmp_path):
    import pandas as pd
    import soundfile as sf

    from fsclap.io import sha256_file
    from pipeline.consistency import Consistency
    from pipeline.diarize.stage import Diarize
    from pipeline.stage import StageContext
    from pipeline.tables import Episode

    settings = load_settings(overrides={"models_dir": str(tiny_funasr_models), "profile": "paper"})
    context = StageContext(data_root=tmp_path, profile="paper")
    rng = np.random.default_rng(1)
    audio = np.concatenate(
        [
            quiet(1, rng),
            speechlike(4, 150, rng),
            quiet(3, rng),
            speechlike(4, 240, rng),
            quiet(1, rng),
        ]
    )
    vocals = tmp_path / "vocals" / "d" / "d-e1.flac"
    vocals.parent.mkdir(parents=True)
    sf.write(
        vocals, np.stack([audio, audio], axis=1), SR
    )  # stereo 16 kHz in: mixed down, resampled to 24 kHz
    episode = Episode(
        episode_id="d-e1",
        drama_id="d",
        source_url="x",
        source_key="x",
        episode_index=1,
        vocals_path="vocals/d/d-e1.flac",
        vocals_sha256=sha256_file(vocals),
    )
    diarize = Diarize({"backend": "funasr"}, context=context, settings=settings)
    diarize.check()
    done = diarize.run(episode)
    assert done.diarize_outcome == "ok"
    rows = pd.read_parquet(tmp_path / done.segments_path)
    assert set(rows["diarizer"]) == {"funasr-paraformer-campplus"} and set(
        rows["embedding_model"]
    ) == {"campplus"}
    assert rows["text"].map(lambda t: t is None or isinstance(t, str)).all()
    clips = rows["clip_path"].dropna()
    assert len(clips) and all(sf.info(tmp_path / p).samplerate == 24000 for p in clips)
    Consistency({}, context=context).run(done)
    table = pd.read_parquet(tmp_path / "manifests" / "segments.parquet")
    assert set(table["reason"]) <= {
        "kept",
        "low_consistency",
        "single_clip_cluster",
        "too_short",
        "overlap",
    }


def test_paper_profile_stage_fails_fast_without_models(tmp_path):
    from pipeline.diarize.stage import Diarize
    from pipeline.stage import StageContext

    settings = load_settings(overrides={"models_dir": str(tmp_path / "none"), "profile": "paper"})
    with pytest.raises(MissingModelError, match="Paraformer-large"):
        Diarize(
            {"backend": "funasr"}, context=StageContext(data_root=tmp_path), settings=settings
        ).check()
