"""Checkpoints: safetensors + config beside them; run dir / folder / file all load the same model."""

import pytest
import torch

from fsclap.errors import FsclapError
from model.factory import load_checkpoint, resolve_checkpoint, save_checkpoint

CAPTIONS = ["a calm female voice", "an angry man shouting"]


def test_roundtrip_and_path_forms(small_offline_model, tmp_path):
    best = tmp_path / "run" / "checkpoints" / "best"
    save_checkpoint(small_offline_model, best)
    assert (best / "config.json").is_file() and (
        best / "backbone" / "text" / "config.json"
    ).is_file()
    expected = small_offline_model.encode_text(CAPTIONS)
    for form in (tmp_path / "run", best, best / "model.safetensors"):
        assert resolve_checkpoint(form) == best
        model = load_checkpoint(form, "cpu")
        assert not model.training
        assert torch.allclose(model.encode_text(CAPTIONS), expected, atol=1e-6)


def test_bad_checkpoint_paths(tmp_path, small_offline_model):
    with pytest.raises(FsclapError, match="not found"):
        resolve_checkpoint(tmp_path / "nothing")
    (tmp_path / "run" / "checkpoints" / "last").mkdir(parents=True)
    with pytest.raises(FsclapError, match="no best checkpoint yet"):
        resolve_checkpoint(tmp_path / "run")
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(FsclapError, match="not a checkpoint"):
        resolve_checkpoint(tmp_path / "weights.pt")
    folder = save_checkpoint(small_offline_model, tmp_path / "ckpt")
    (folder / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(FsclapError, match="cannot load"):
        load_checkpoint(folder)
    for broken in ("{not json", '{"backbone": 3}'):
        (folder / "config.json").write_text(broken)
        with pytest.raises(FsclapError, match="config.json is not a valid model config") as caught:
            load_checkpoint(folder)
        assert "\n" not in str(caught.value)
