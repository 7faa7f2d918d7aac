"""Build FS-CLAP models from configs and save / load checkpoints (open_clip's ``create_model`` idea).

A checkpoint is a folder::

    model.safetensors   every weight (backbone included)
    config.json         the ModelConfig
    backbone/           what rebuilds the backbone's architecture and tokenizer without its original weights

``load_checkpoint(path)`` accepts that folder, its ``model.safetensors``, or a run directory (then its
best checkpoint, ``RUN_DIR/checkpoints/best``, is used).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError

from fsclap.config import format_validation_error, load_settings
from fsclap.errors import FsclapError
from fsclap.io import atomic_path, write_json
from fsclap.layout import RunDir
from model.backbones.laion_clap import LaionClapBackbone
from model.backbones.offline import OfflineBackbone
from model.fsclap import FSCLAP
from model.model_config import ModelConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def build_backbone(config: ModelConfig, settings=None, assets: Path | None = None):
    if config.backbone == "offline":
        return OfflineBackbone.build(config.audio, config.text_max_length, assets=assets)

    if assets is not None:
        return LaionClapBackbone.build(text_max_length=config.text_max_length, assets=assets)
    if settings is None:
        settings = load_settings()
    return LaionClapBackbone.build(settings.model_path("laion_clap"), config.text_max_length)


def create_model(config: ModelConfig, settings=None, seed: int | None = None) -> FSCLAP:
    """A model with pretrained backbone weights (MiniLM / LAION-CLAP) and freshly initialised heads."""
    if seed is not None:
        torch.manual_seed(seed)
    return FSCLAP(config, build_backbone(config, settings))


def save_checkpoint(model: FSCLAP, folder: str | Path, extra: dict | None = None) -> Path:
    """Write ``folder`` atomically enough for a killed run: weights go to a temp file then rename."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # DDP wrapper
    if not (folder / "backbone").is_dir():
        model.backbone.save_assets(folder / "backbone")
    with atomic_path(folder / WEIGHTS) as tmp:
        save_model(model, str(tmp), metadata={"format": "pt"})
    write_json(folder / CONFIG, model.config.model_dump(mode="json"))
    if extra:
        write_json(folder / "info.json", extra)
    return folder


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder that ``path`` (run dir, checkpoint folder or weights file) designates."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".safetensors":
            raise FsclapError(f"{path} is not a checkpoint (expected {WEIGHTS} or a run directory)")
        return path.parent
    if (path / WEIGHTS).is_file():
        return path
    run = RunDir(path)
    if (run.best / WEIGHTS).is_file():
        return run.best
    if not path.exists():
        raise FsclapError(f"checkpoint not found: {path}")
    if run.checkpoints.is_dir():
        raise FsclapError(f"run {path} has no best checkpoint yet (no validation has finished)")
    raise FsclapError(f"{path} is neither a run directory nor a checkpoint folder")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> FSCLAP:
    """Load a model for inference (eval mode) from a run directory, checkpoint folder or weights file."""
    from safetensors.torch import load_model

    folder = resolve_checkpoint(path)
    if not (folder / CONFIG).is_file():
        raise FsclapError(f"checkpoint {folder} lacks {CONFIG}")
    try:
        config = ModelConfig(**json.loads((folder / CONFIG).read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        detail = (
            format_validation_error(exc)
            if isinstance(exc, ValidationError)
            else " ".join(str(exc).split())
        )
        raise FsclapError(
            f"checkpoint {folder}: {CONFIG} is not a valid model config ({detail[:200]})"
        ) from None
    if not (folder / "backbone").is_dir():
        raise FsclapError(f"checkpoint {folder} lacks its backbone/ assets")
    model = FSCLAP(config, build_backbone(config, assets=folder / "backbone"))
    try:
        load_model(model, str(folder / WEIGHTS), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise FsclapError(f"cannot load {folder / WEIGHTS}: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval()
