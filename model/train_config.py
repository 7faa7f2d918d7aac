"""Typed training configuration: defaults = the paper's settings (§4.2); ``--config FILE`` and
``--set key=value`` override them.

Contract keys (DESIGN.md): ``backbone``, ``epochs``, ``batch_size``, ``grad_accum``, ``lr_backbone``,
``lr_fusion``, ``seed``, and the ablation switches ``fusion``, ``separation``, ``hn_loss``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsclap.config import format_validation_error, parse_overrides
from fsclap.errors import FsclapError
from model.model_config import BACKBONE_CONFIGS, ModelConfig, load_model_config


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- what is trained (contract keys first)
    backbone: Literal["offline", "laion-clap"] = "offline"
    fusion: bool = True
    separation: bool = True
    hn_loss: bool = True
    model: str | None = Field(None, description="Model config name/path; default: fsclap-<backbone>.")
    model_overrides: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields, e.g. d_model.")
    pooling: Literal["mean", "attention", "native"] | None = Field(None, description="Pooling when separation=false.")

    # --- optimisation (paper §4.2)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(96, ge=2)
    grad_accum: int = Field(2, ge=1)
    lr_backbone: float = 4e-5
    lr_fusion: float = 1e-4
    lr_scratch: float = Field(1e-3, description="From-scratch encoders (offline audio encoder).")
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    grad_clip: float = Field(1.0, description="Max global grad norm; 0 disables.")
    seed: int = 0

    # --- loss
    gamma: float = 0.15
    reg_weight: float = 1.0
    # "none" by default: on the offline benchmark the pair loss cost 8x the time and helped neither bi
    # retrieval nor re-ranking (benchmarks/train_offline.py); "hard"/"all" train the pair path for re-ranking
    pair_loss: Literal["hard", "all", "none"] = "none"
    pair_negatives: int = Field(8, ge=1, description="Hard negatives per row for pair_loss=hard.")
    pair_weight: float = 1.0
    gather_negatives: bool = Field(True, description="Several GPUs (DDP): score each clip against the global batch "
                                   "(all GPUs' clips as negatives), as one GPU with the global batch would; "
                                   "false: per-GPU negatives. The pair loss always uses per-GPU negatives.")

    # --- backbone freezing and feature caches
    freeze_text: bool = False
    freeze_audio: bool = False
    cache_frozen: bool = Field(True, description="Cache features of frozen encoders (deterministic audio crops).")

    # --- runtime
    device: str = "auto"
    amp: bool = Field(True, description="Mixed precision (autocast); the dtype comes from amp_dtype.")
    amp_dtype: Literal["auto", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it, fp16 + gradient scaler on older GPUs, off on CPU; "
        "bf16/fp16 force that dtype on any device (fp16 always with the gradient scaler).")
    workers: int = Field(2, ge=0)
    cpu_threads: int | None = Field(None, ge=1, description="Torch threads on CPU; default: cores minus loader workers.")
    max_audio_seconds: float | None = None
    val_batch_size: int = 64
    val_rerank_k: int = Field(10, ge=0, description="Shortlist size for pair re-ranking metrics (0: off).")
    select_metric: str = Field("mAP@10", description="Best checkpoint: mean of a2t and t2a of this bi metric.")
    log_every: int = Field(10, ge=1)
    save_every: int = Field(0, ge=0, description="Also save the resumable state every N optimizer steps (0: epoch ends).")
    stop_after_steps: int | None = Field(None, description="Save and stop after this many optimizer steps (chunked jobs).")
    resume: bool = True

    def model_config_resolved(self) -> ModelConfig:
        overrides = dict(self.model_overrides)
        overrides.update(fusion=self.fusion, separation=self.separation)
        if self.pair_loss == "none":
            overrides["pair_scoring"] = False  # an untrained pair path must not be used for re-ranking
        if self.pooling is not None:
            overrides["pooling"] = self.pooling
        name = self.model or BACKBONE_CONFIGS[self.backbone]
        cfg = load_model_config(name, overrides)
        if cfg.backbone != self.backbone:
            raise FsclapError(f"model config {name} is for backbone {cfg.backbone}, but backbone={self.backbone}")
        return cfg


def load_train_config(file: str | Path | None = None, overrides: Iterable[str] | dict | None = None) -> TrainConfig:
    """Defaults < JSON/YAML file < ``--set`` overrides (``model.<field>=v`` sets a ModelConfig field)."""
    data: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise FsclapError(f"training config not found: {path}")
        try:
            loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise FsclapError(f"training config {path} is not valid: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise FsclapError(f"training config {path} must hold a mapping")
        data.update(loaded)
    sets = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
    for key, value in sets.items():
        if key == "model" and isinstance(value, dict):  # --set model.d_model=128
            data.setdefault("model_overrides", {}).update(value)
        else:
            data[key] = value
    try:
        cfg = TrainConfig(**data)
        cfg.model_config_resolved()
    except ValidationError as exc:
        raise FsclapError(f"invalid training config: {format_validation_error(exc)}") from None
    return cfg
