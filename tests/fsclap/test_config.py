from pathlib import Path

import pytest

from fsclap.config import load_settings, parse_overrides
from fsclap.errors import FsclapError


def test_defaults():
    s = load_settings()
    assert s.profile == "offline"
    assert s.device == "auto"
    assert s.resolved_device() in {"cpu", "cuda"}


def test_precedence_file_env_set(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: paper\nseed: 1\nworkers: 5\ndata_root: /from/file\n")
    s = load_settings(cfg)
    assert (s.profile, s.seed, s.workers, s.data_root) == ("paper", 1, 5, Path("/from/file"))
    monkeypatch.setenv("FSCLAP_SEED", "2")
    monkeypatch.setenv("FSCLAP_DATA_ROOT", "/from/env")
    s = load_settings(cfg)
    assert (s.seed, s.workers, s.data_root) == (2, 5, Path("/from/env"))
    s = load_settings(cfg, ["seed=3"])
    assert (s.seed, s.data_root) == (3, Path("/from/env"))


def test_config_file_from_env(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 11\n")
    monkeypatch.setenv("FSCLAP_CONFIG", str(cfg))
    assert load_settings().seed == 11


def test_nested_model_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("FSCLAP_MODELS", str(tmp_path / "root"))
    s = load_settings()
    assert s.model_path("paraformer") == tmp_path / "root" / "paraformer"
    monkeypatch.setenv("FSCLAP_MODEL_PATHS__DEMUCS", str(tmp_path / "d"))
    assert load_settings().model_path("demucs") == tmp_path / "d"
    s = load_settings(overrides=[f"model_paths.sensevoice={tmp_path / 's'}"])
    assert s.model_path("sensevoice") == tmp_path / "s"


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (["profile=cloud"], "profile"),
        (["no_such_key=1"], "no_such_key"),
        (["workers=-1"], "workers"),
        (["novalue"], "key=value"),
    ],
)
def test_invalid_settings_are_one_line_errors(bad, fragment):
    with pytest.raises(FsclapError) as exc:
        load_settings(overrides=bad)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(FsclapError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed\n")
    with pytest.raises(FsclapError, match="not valid YAML"):
        load_settings(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(FsclapError, match="mapping"):
        load_settings(listy)


def test_parse_overrides_types():
    tree = parse_overrides(["a.b=3", "c=true", "d=0.5", "e=text", "f="])
    assert tree == {"a": {"b": 3}, "c": True, "d": 0.5, "e": "text", "f": ""}
