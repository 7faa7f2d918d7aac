"""Typed training configuration; ``--config FILE`` (or a preset name) and ``--set key=value`` override it.

The schedule (batch, accumulation, epochs, warm-up) comes from a preset: ``auto`` (default) derives
what the user left unset from the number of training clips (``resolve_schedule``), so that a few
hundred clips train as well as 100k; ``paper`` is exactly the paper's §4.2 settings. Explicit values win.

Contract keys (docs/design.md): ``backbone``, ``epochs``, ``batch_size``, ``grad_accum``,
``lr_backbone``, ``lr_fusion``, ``seed``, and the ablation switches ``fusion``, ``separation``,
``hn_loss``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fsclap.config import format_validation_error, parse_overrides
from fsclap.errors import FsclapError
from model.augment import AugmentConfig
from model.model_config import BACKBONE_CONFIGS, ModelConfig, load_model_config

# the paper's §4.2 training settings (cosine schedule, AdamW betas are the trainer's)
PAPER_SETTINGS: dict[str, Any] = {
    "batch_size": 96,
    "grad_accum": 2,
    "epochs": 10,
    "warmup_epochs": 1.0,
    "lr_backbone": 4e-5,
    "lr_fusion": 1e-4,
    "weight_decay": 0.01,
    "min_lr_ratio": 0.0,
    "recaption": 0.0,
}  # the paper trains on its stored captions
PRESETS = ("auto", "paper")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- what is trained (contract keys first)
    backbone: Literal["offline", "laion-clap"] = "offline"
    fusion: bool = True
    separation: bool = True
    hn_loss: bool = True
    model: str | None = Field(
        None, description="Model config name/path; default: fsclap-<backbone>."
    )
    model_overrides: dict[str, Any] = Field(
        default_factory=dict, description="ModelConfig fields, e.g. d_model."
    )
    pooling: Literal["mean", "attention", "native"] | None = Field(
        None, description="Pooling when separation=false."
    )

    # --- optimisation (paper §4.2); None = derived by the preset (resolve_schedule)
    preset: Literal["auto", "paper"] = Field(
        "auto",
        description="auto: derive batch/epochs/warm-up left unset from the corpus size; paper: §4.2 exactly.",
    )
    target_steps: int = Field(
        400, ge=1, description="auto: optimizer steps to aim for (epochs clamped to 10..60)."
    )
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=2, description="Clips per micro-batch and process.")
    grad_accum: int | None = Field(None, ge=1)
    lr_backbone: float = 4e-5
    lr_fusion: float = 1e-4
    lr_scratch: float = Field(1e-3, description="From-scratch encoders (offline audio encoder).")
    weight_decay: float = 0.01
    warmup_epochs: float | None = Field(
        None, ge=0, description="None: 10% of the optimizer steps (the paper's 1 of 10 epochs)."
    )
    min_lr_ratio: float = 0.0
    grad_clip: float = Field(1.0, description="Max global grad norm; 0 disables.")
    seed: int = 0

    # --- voice invariance (model.augment, model.sampler): training data only, never evaluation. Both off by
    # default: on held-out espeak-ng voices augmentation helped the plain log-mels but added nothing on top of
    # the centred log-mels (model.audio.normalise), and one-attribute batches lowered mAP@10
    # (benchmarks/voice_invariance.py, 1 seed)
    augment: bool = Field(
        False,
        description="Label-preserving audio augmentation (formants, EQ, band limit, reverb, "
        "noise; never pitch, tempo or loudness).",
    )
    augment_params: AugmentConfig = Field(
        default_factory=AugmentConfig, description="e.g. augment_params.noise_p=0."
    )
    sampler: Literal["random", "attribute"] = Field(
        "random",
        description="attribute: batches of groups whose clips differ from an anchor in exactly one attribute.",
    )
    sampler_group: int = Field(
        4, ge=1, description="Clips per hard-negative group (sampler=attribute)."
    )
    # On by default: with one fixed caption per clip the fine-tuned text encoder learns the caption writer's phrases;
    # re-phrasing every epoch raised held-out-wording t2a mAP@10 from 32.1 to 37.9 on held-out espeak-ng voices
    # (2 seeds; 0.5: 36.1) and did not lower the seen wording (docs/model.md)
    recaption: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of training clips with known levels whose caption is "
        "re-phrased each epoch by the caption writer (0: stored captions only, e.g. human "
        "captions that say more than the levels).",
    )

    # --- loss
    gamma: float = 0.15
    reg_weight: float = 1.0
    # "none" by default: on the offline benchmark the pair loss cost 8x the time and helped neither bi
    # retrieval nor re-ranking (benchmarks/train_offline.py); "hard"/"all" train the pair path for re-ranking
    pair_loss: Literal["hard", "all", "none"] = "none"
    pair_negatives: int = Field(8, ge=1, description="Hard negatives per row for pair_loss=hard.")
    pair_weight: float = 1.0
    gather_negatives: bool = Field(
        True,
        description="Several GPUs (DDP): score each clip against the global batch "
        "(all GPUs' clips as negatives), as one GPU with the global batch would; "
        "false: per-GPU negatives. The pair loss always uses per-GPU negatives.",
    )

    # --- backbone freezing and feature caches
    freeze_text: bool = False
    freeze_audio: bool = False
    cache_frozen: bool = Field(
        True, description="Cache features of frozen encoders (deterministic audio crops)."
    )

    # --- runtime
    device: str = "auto"
    amp: bool = Field(
        True, description="Mixed precision (autocast); the dtype comes from amp_dtype."
    )
    amp_dtype: Literal["auto", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it, fp16 + gradient scaler on older GPUs, off on CPU; "
        "bf16/fp16 force that dtype on any device (fp16 always with the gradient scaler).",
    )
    workers: int = Field(2, ge=0)
    cpu_threads: int | None = Field(
        None, ge=1, description="Torch threads on CPU; default: cores minus loader workers."
    )
    max_audio_seconds: float | None = None
    val_batch_size: int = 64
    val_rerank_k: int = Field(
        10, ge=0, description="Shortlist size for pair re-ranking metrics (0: off)."
    )
    select_metric: str = Field(
        "mAP@10", description="Best checkpoint: mean of a2t and t2a of this bi metric."
    )
    log_every: int = Field(10, ge=1)
    save_every: int = Field(
        0,
        ge=0,
        description="Also save the resumable state every N optimizer steps (0: epoch ends).",
    )
    stop_after_steps: int | None = Field(
        None, description="Save and stop after this many optimizer steps (chunked jobs)."
    )
    resume: bool = True

    @model_validator(mode="after")
    def _apply_preset(self) -> TrainConfig:
        if self.preset == "paper":  # fills only what was not given explicitly: explicit values win
            for key, value in PAPER_SETTINGS.items():
                if key not in self.model_fields_set:
                    setattr(self, key, value)
        return self

    def model_config_resolved(self) -> ModelConfig:
        overrides = dict(self.model_overrides)
        overrides.update(fusion=self.fusion, separation=self.separation)
        if self.pair_loss == "none":
            overrides["pair_scoring"] = (
                False  # an untrained pair path must not be used for re-ranking
            )
        if self.pooling is not None:
            overrides["pooling"] = self.pooling
        name = self.model or BACKBONE_CONFIGS[self.backbone]
        cfg = load_model_config(name, overrides)
        if cfg.backbone != self.backbone:
            raise FsclapError(
                f"model config {name} is for backbone {cfg.backbone}, but backbone={self.backbone}"
            )
        return cfg


# --- the derived schedule ----------------------------------------------------------------------
# Why this rule: the paper's batch 96 x 2 for 10 epochs suits its 26k-500k clips, but gives a 300-clip
# corpus 20 optimizer steps (barely trained). The effective batch grows as sqrt(N) (rounded to 16,
# within 16..192), so the steps per epoch grow as sqrt(N) too: a small corpus still gets in-batch
# negatives and many steps, and the CPU cost of `target_steps` steps grows only as sqrt(N). Epochs
# follow from target_steps, at least the paper's 10 (so from ~37k clips the derived schedule IS the
# paper's: 192 = 96 x 2, 10 epochs) and at most 60 (a tiny corpus would otherwise spend its time
# validating). Micro-batches stay <= the paper's 96 per process; the rest is accumulation.
MIN_BATCH, MAX_BATCH, BATCH_STEP = 16, 192, 16
MAX_MICRO_BATCH = 96
MIN_EPOCHS, MAX_EPOCHS = 10, 60
WARMUP_FRACTION = 0.1  # the paper's 1 warm-up epoch of 10
FEW_STEPS = 100  # fewer optimizer steps than this: warn that the model will barely train


@dataclass(frozen=True)
class Schedule:
    """What a run actually uses: per-process micro-batch, accumulation, epochs, steps, warm-up."""

    preset: str
    train_clips: int
    world: int
    batch_size: int
    grad_accum: int
    epochs: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    derived: tuple[str, ...]  # the settings the preset filled in (empty: all given)
    target_steps: int | None  # what the derivation aimed for (None: epochs were given)

    @property
    def micro_batches_per_epoch(self) -> int:
        return micro_batches_per_epoch(self.train_clips, self.world, self.batch_size)

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.world

    def describe(self) -> str:
        """One line for the log, e.g. '312 training clips -> batch 16 x 1, 24 epochs, 408 optimizer steps (target 400)'."""
        procs = f" x {self.world} processes" if self.world > 1 else ""
        target = f" (target {self.target_steps})" if self.target_steps is not None else ""
        how = f"preset {self.preset}" + (
            f"; from the corpus size: {', '.join(self.derived)}" if self.derived else ""
        )
        return (
            f"{self.train_clips} training clips -> batch {self.batch_size} x {self.grad_accum}{procs} "
            f"(effective {self.effective_batch}), {self.epochs} epochs, {self.steps_per_epoch} steps/epoch, "
            f"{self.total_steps} optimizer steps{target}, {self.warmup_steps} warm-up [{how}]"
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["derived"] = list(self.derived)
        out["effective_batch"] = self.effective_batch
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        fields = {k: v for k, v in data.items() if k != "effective_batch"}
        return cls(**{**fields, "derived": tuple(fields.get("derived", ()))})


def micro_batches_per_epoch(n_train: int, world: int, batch_size: int) -> int:
    """Full micro-batches each process runs per epoch (at least one)."""
    return max(1, n_train // world // batch_size)


def derived_effective_batch(n_train: int) -> int:
    """sqrt(N) rounded to a multiple of 16, within 16..192 (see the rule above)."""
    batch = BATCH_STEP * round(math.sqrt(max(n_train, 1)) / BATCH_STEP)
    return int(min(MAX_BATCH, max(MIN_BATCH, batch)))


def resolve_schedule(config: TrainConfig, n_train: int, world: int = 1) -> Schedule:
    """The schedule a run on ``n_train`` usable clips over ``world`` processes uses: explicit settings
    as given, the rest derived (preset auto) — the one place the trainer's step arithmetic lives."""
    # a contrastive batch needs two clips; under DDP each process needs one (negatives are gathered)
    if n_train < max(2, world):
        raise FsclapError(
            f"{n_train} training clip(s) for {world} process(es); need at least 2, and one per process"
        )
    derived: list[str] = []
    per_process = n_train // world
    batch, accum = config.batch_size, config.grad_accum
    if batch is None:
        derived.append("batch_size")
        effective = derived_effective_batch(n_train)
        if accum is None:
            derived.append("grad_accum")
            accum = math.ceil(effective / (MAX_MICRO_BATCH * world))
        batch = max(2, math.ceil(effective / (accum * world)))
    elif accum is None:
        derived.append("grad_accum")
        accum = 1  # an explicit micro-batch is the batch the user asked for
    batch = min(batch, per_process)
    steps_per_epoch = math.ceil(micro_batches_per_epoch(n_train, world, batch) / accum)
    target = None
    epochs = config.epochs
    if epochs is None:
        derived.append("epochs")
        target = config.target_steps
        epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(target / steps_per_epoch)))
    total = steps_per_epoch * epochs
    if config.warmup_epochs is None:
        derived.append("warmup")
        warmup = max(1, round(WARMUP_FRACTION * total))
    else:
        warmup = (
            max(1, round(config.warmup_epochs * steps_per_epoch)) if config.warmup_epochs > 0 else 0
        )
    return Schedule(
        config.preset,
        n_train,
        world,
        batch,
        accum,
        epochs,
        steps_per_epoch,
        total,
        warmup,
        tuple(derived),
        target,
    )


def load_train_config(
    file: str | Path | None = None, overrides: Iterable[str] | dict | None = None
) -> TrainConfig:
    """Defaults < JSON/YAML file (or a preset name: ``paper``, ``auto``) < ``--set`` overrides
    (``model.<field>=v`` sets a ModelConfig field)."""
    data: dict[str, Any] = {}
    if file is not None and str(file) in PRESETS and not Path(file).exists():
        data["preset"] = str(file)
    elif file is not None:
        path = Path(file)
        if not path.is_file():
            raise FsclapError(f"training config not found: {path}")
        try:
            loaded = (
                json.loads(path.read_text())
                if path.suffix == ".json"
                else yaml.safe_load(path.read_text())
            )
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise FsclapError(
                f"training config {path} is not valid: {str(exc).splitlines()[0]}"
            ) from None
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
