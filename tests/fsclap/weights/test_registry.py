"""The registry matches what the stages load: file sets, Demucs' own release list, where each
model is looked for, and which stages declare which models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsclap.config import load_settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.model_store import loaders
from fsclap.model_store.loaders import ModelLoader, declare_loader, declared_loaders, model_loader
from fsclap.model_store.presence import presence, required_files
from fsclap.model_store.registry import (
    MODELS,
    OFFLINE_MODELS,
    PAPER_MODELS,
    file_url,
    locate,
    model_ids,
)
from fsclap.testing.tiny_models import write_tiny_clap_folder, write_tiny_clap_original
from fsclap.weights import LOADER_MODULES
from fsclap.weights.pull import hub_files
from model.backbones.laion_clap import load_clap
from model.backbones.laion_clap_layout import clap_files
from pipeline.caption import Caption
from pipeline.diarize.stage import Diarize
from pipeline.runner import build_stages
from pipeline.stage import StageContext


def test_profiles():
    assert PAPER_MODELS == [
        "demucs",
        "paraformer",
        "fsmn_vad",
        "ct_punc",
        "campplus",
        "sensevoice",
        "laion_clap",
    ]
    assert OFFLINE_MODELS == ["silero_vad", "resemblyzer", "minilm"]
    assert all(MODELS[m].source == "wheel" and not MODELS[m].pullable for m in OFFLINE_MODELS)
    assert model_ids(only=["sensevoice", "demucs"]) == ["demucs", "sensevoice"]  # registry order


@pytest.mark.parametrize(
    "model_id", ["paraformer", "fsmn_vad", "ct_punc", "campplus", "sensevoice"]
)
def test_modelscope_file_sets_are_what_the_loaders_read(model_id, tiny_release):
    """The tiny dirs mirror each release's configuration.json; every file the project's loader
    reads is one the registry pulls, and the registry pulls nothing the release does not have."""
    spec = MODELS[model_id]
    needed = {
        p.name for p in required_files(model_id, tiny_release[model_id], load_settings()).values()
    }
    listed = {f.path for f in spec.files}
    assert needed <= {f.path for f in spec.files if not f.optional}
    assert listed <= {p.name for p in tiny_release[model_id].iterdir()}
    assert "configuration.json" in listed


def test_demucs_files_come_from_demucs_own_release_list():
    files = hub_files(MODELS["demucs"], load_settings())
    assert [f.path for f in files] == ["955717e8-8726e21a.th", "htdemucs.yaml"]
    assert (
        file_url(files[0])
        == "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th"
    )
    other = hub_files(
        MODELS["demucs"],
        load_settings(overrides={"stages": {"separate": {"model": "htdemucs_ft"}}}),
    )
    assert len([f for f in other if f.path.endswith(".th")]) == 4  # a bag of four models


def test_locate_follows_the_settings_the_stages_read(tmp_path, monkeypatch):
    settings = load_settings()
    root = Path(os.environ["FSCLAP_MODELS"])
    for model_id in PAPER_MODELS:
        where = locate(settings, model_id)
        assert where.path == settings.model_path(model_id) == root / model_id
        assert where.origin == f"$FSCLAP_MODELS/{model_id}"
    custom = load_settings(
        overrides={
            "model_paths": {"sensevoice": str(tmp_path / "sv")},
            "stages": {"separate": {"model_path": str(tmp_path / "dm")}},
        }
    )
    assert locate(custom, "sensevoice").path == tmp_path / "sv"
    assert locate(custom, "sensevoice").origin == "model_paths.sensevoice"
    assert (
        locate(custom, "demucs").path == tmp_path / "dm"
    )  # the separate stage's own setting wins, as in the stage
    assert locate(custom, "demucs").origin == "stages.separate.model_path"
    assert (
        locate(settings, "minilm").path.name == "model" and locate(settings, "minilm").path.is_dir()
    )


def test_clap_layouts_match_load_clap(tmp_path):
    folder = write_tiny_clap_folder(tmp_path / "hf_format")
    assert presence("laion_clap", folder, load_settings()).ok
    assert set(clap_files(folder)) == {"config", "weights", "tokenizer"}

    checkpoint, _ = write_tiny_clap_original(tmp_path / "original")
    for name in ("tokenizer.json", "vocab.json"):
        (checkpoint.parent / "roberta-base" / name).unlink()
    state = presence("laion_clap", checkpoint.parent, load_settings())
    assert not state.ok and state.missing == [
        "roberta-base/vocab.json"
    ]  # merges.txt is still there
    with pytest.raises(MissingModelError, match="RoBERTa tokenizer"):
        load_clap(checkpoint.parent)
    # model_paths.laion_clap may name the checkpoint file itself
    assert presence("laion_clap", checkpoint, load_settings()).missing == [
        "roberta-base/vocab.json"
    ]


def test_stages_declare_the_models_they_load(installed, tmp_path):
    paper = load_settings(overrides={"profile": "paper", "data_root": str(tmp_path / "data")})
    declared = {s.name: s.models() for s in build_stages(paper)}
    assert declared["separate"] == ["demucs"] and declared["caption"] == ["sensevoice"]
    assert declared["diarize"] == ["paraformer", "fsmn_vad", "ct_punc", "campplus"]
    assert sum(declared.values(), []) == [
        m for m in PAPER_MODELS if m != "laion_clap"
    ]  # CLAP is for training
    offline = load_settings(overrides={"data_root": str(tmp_path / "data")})
    assert all(s.models() == [] for s in build_stages(offline))
    context = StageContext(data_root=tmp_path / "data", profile="paper")
    assert Diarize({"backend": "funasr"}, context=context, settings=paper).models() == [
        "paraformer",
        "fsmn_vad",
        "ct_punc",
        "campplus",
    ]
    assert Diarize({"backend": "offline"}, context=context, settings=paper).models() == []
    assert Caption({}, context=context, settings=paper).models() == ["sensevoice"]
    assert Caption({"emotion": "none"}, context=context, settings=paper).models() == []


def test_every_model_has_a_loader_declared_where_the_registry_says():
    """fsclap.weights imports every loading module; each declares the loaders of its models."""
    declared = declared_loaders()
    assert sorted(declared) == sorted(MODELS)
    assert {m.__name__ for m in LOADER_MODULES} == {spec.declared_by for spec in MODELS.values()}
    for model_id, loader in declared.items():
        assert loader.module == MODELS[model_id].declared_by, model_id


def test_a_model_without_a_declared_loader_is_a_one_line_error(monkeypatch):
    monkeypatch.delitem(loaders._LOADERS, "sensevoice")
    with pytest.raises(
        FsclapError,
        match=r"^no loader is declared for model 'sensevoice': import pipeline\.emotion ",
    ):
        model_loader("sensevoice")
    with pytest.raises(FsclapError, match="unknown model id 'nope'"):
        model_loader("nope")
    with pytest.raises(FsclapError, match="not in the model registry"):
        declare_loader(ModelLoader("nope", files=lambda p, s: {}, smoke_test=lambda p, s, d: ""))
