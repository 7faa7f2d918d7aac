"""Model configurations (open_clip style): JSON files in ``model/configs/``, one per architecture row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from fsclap.config import format_validation_error
from fsclap.errors import FsclapError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BACKBONE_CONFIGS = {"offline": "fsclap-offline", "laion-clap": "fsclap-laion"}


class ModelConfig(BaseModel):
    """Architecture of one FS-CLAP variant. ``fusion``/``separation`` are the ablation switches
    (both false + ``pooling`` = the plain CLAP baseline)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "fsclap-offline"
    backbone: Literal["offline", "laion-clap"] = "offline"
    d_model: int = 256  # width of the fusion/separation stack (backbone tokens are projected to it)
    embed_dim: int = 256  # joint embedding size
    fusion: bool = True
    fusion_layers: int = 2
    heads: int = 4
    ffn_mult: float = 4.0
    dropout: float = 0.1
    pair_scoring: bool = (
        True  # fused pair scores (needs fusion); false when the pair path was not trained
    )
    separation: bool = True
    pooling: Literal["mean", "attention", "native"] = "mean"  # used when separation is off
    temperature: float = 0.07  # initial tau; learnable when learn_temperature
    learn_temperature: bool = True
    text_max_length: int = 64
    audio: dict[str, Any] = {}  # backbone audio settings (offline: log-mel + encoder sizes)

    @model_validator(mode="after")
    def _check(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.pooling == "native" and (
            self.fusion or self.separation or self.backbone != "laion-clap"
        ):
            raise ValueError(
                "pooling=native (the backbone's own embeddings) needs backbone=laion-clap, fusion=false, separation=false"
            )
        return self


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``; nested sections (``audio``) are merged key by key, so
    ``--set model.audio.prosody=false`` changes one setting and keeps the rest of the section."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_model_config(
    name_or_path: str | Path, overrides: dict[str, Any] | None = None
) -> ModelConfig:
    """A config by name (``model/configs/<name>.json``) or path, with field overrides on top."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise FsclapError(f"model config {name_or_path} not found (known: {', '.join(known)})")
    data = _deep_merge(json.loads(path.read_text()), overrides or {})
    try:
        return ModelConfig(**data)
    except ValidationError as exc:
        raise FsclapError(
            f"invalid model config {path.name}: {format_validation_error(exc)}"
        ) from None
