"""The flows' parameters: one pydantic model per flow (the form the Prefect UI shows, and the
schema that rejects a bad run before any work).

Every field left empty falls back to the worker's settings (``FSCLAP_*`` environment, the
``config_file``, ``overrides``), so a deployment can run with no parameters at all: the
nightly refresh rebuilds ``$FSCLAP_DATA_ROOT`` from its ``sources.yaml``, training takes the
latest published dataset, evaluation the run trained on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fsclap.config import load_settings
from fsclap.errors import FsclapError
from fsclap.layout import DataRoot
from pipeline.runner import stage_names

StageName = Literal[tuple(stage_names())]  # the pipeline's own list, in order
SplitName = Literal["train", "val", "test"]


def _check_overrides(values: list[str]) -> list[str]:
    bad = [v for v in values if "=" not in v or not v.split("=", 1)[0].strip()]
    if bad:
        raise ValueError(f"expected key=value, got {bad[0]!r}")
    return values


class SettingsParams(BaseModel):
    """What selects the fsclap settings of a run (the CLI's global --config/--set)."""

    model_config = ConfigDict(extra="forbid")

    data_root: Path | None = Field(
        None, description="Data root (default: the worker's FSCLAP_DATA_ROOT / settings)."
    )
    profile: Literal["offline", "paper"] | None = Field(
        None,
        description="offline: models shipped in wheels; paper: "
        "the paper's models from FSCLAP_MODELS (default: settings).",
    )
    config_file: Path | None = Field(
        None, description="fsclap settings YAML on the worker (default: $FSCLAP_CONFIG)."
    )
    overrides: list[str] = Field(
        default_factory=list,
        description="Settings overrides key=value, as `fsclap --set` "
        "(e.g. stages.separate.method=repet, orchestration.task_runner=dask).",
    )

    @field_validator("overrides")
    @classmethod
    def _overrides_are_pairs(cls, values: list[str]) -> list[str]:
        return _check_overrides(values)

    @classmethod
    def from_settings(cls, settings, **fields):
        """Parameters that reproduce ``settings`` exactly in the flow (for in-process callers that
        hold a Settings object, e.g. the demo): every field as an override (JSON is YAML)."""
        import json

        dumped = settings.model_dump(mode="json")
        return cls(
            overrides=[f"{key}={json.dumps(value)}" for key, value in dumped.items()], **fields
        )

    def settings(self):
        overrides = list(self.overrides)
        if self.data_root is not None:
            overrides.append(f"data_root={self.data_root}")
        if self.profile is not None:
            overrides.append(f"profile={self.profile}")
        return load_settings(self.config_file, overrides)


# Each flow's model lists its own fields first, then the settings fields (the UI form's order):
# pydantic orders fields of ``class M(SettingsParams, Own)`` as Own's, then SettingsParams'.


class _BuildCorpusFields(BaseModel):
    sources: Path | None = Field(
        None, description="Sources YAML/CSV (default: DATA_ROOT/sources.yaml)."
    )
    stages: list[StageName] | None = Field(
        None, min_length=1, description="Run only these stages (default: all)."
    )
    retry_failed: bool = Field(
        False, description="Retry episodes that failed for a content reason."
    )
    acquire_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Prefect retries of a download that failed for a "
        "network reason (on top of the downloader's own quick retries).",
    )
    acquire_retry_delay_s: float = Field(
        30.0, ge=0, le=3600, description="First retry delay; doubles each retry."
    )


class BuildCorpusParams(SettingsParams, _BuildCorpusFields):
    """``build-corpus``: sources -> discovery -> every stage over the episodes (incremental)."""

    def sources_path(self, data_root: Path) -> Path:
        return self.sources if self.sources is not None else DataRoot(data_root).sources_file


class _TrainFields(BaseModel):
    dataset: Path | None = Field(
        None,
        description="A published dataset folder DATA_ROOT/datasets/VERSION "
        "(default: the one named by DATA_ROOT/datasets/LATEST).",
    )
    train_manifest: Path | None = Field(
        None, description="Training clip manifest (instead of a dataset)."
    )
    val_manifest: Path | None = Field(
        None, description="Validation clip manifest (instead of a dataset)."
    )
    run_dir: Path | None = Field(
        None,
        description="Run directory (default: DATA_ROOT/runs/fsclap-VERSION); "
        "re-running the same run resumes it.",
    )
    train_config: Path | None = Field(
        None,
        description="Training config JSON/YAML, or a preset name (paper); "
        "default: a schedule derived from the corpus size.",
    )
    train_overrides: list[str] = Field(
        default_factory=list,
        description="Training overrides key=value, as "
        "`fsclap train --set` (epochs, batch_size, backbone, fusion, ...).",
    )
    nproc_per_node: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes (GPUs) for data-parallel training; "
        ">1 launches torchrun on this worker.",
    )

    @field_validator("train_overrides")
    @classmethod
    def _train_overrides_are_pairs(cls, values: list[str]) -> list[str]:
        return _check_overrides(values)


class TrainParams(SettingsParams, _TrainFields):
    """``train-fsclap``: train on a published dataset version (or explicit manifests)."""

    @model_validator(mode="after")
    def _manifests_in_pairs(self):
        if (self.train_manifest is None) != (self.val_manifest is None):
            raise ValueError(
                "give both train_manifest and val_manifest, or neither (then a dataset is used)"
            )
        if self.train_manifest is not None and self.dataset is not None:
            raise ValueError("give a dataset or train/val manifests, not both")
        return self


class _EvaluateFields(BaseModel):
    checkpoint: Path | None = Field(
        None,
        description="Run directory or checkpoint file (default: the run "
        "train-fsclap makes for the dataset).",
    )
    dataset: Path | None = Field(
        None, description="Published dataset folder (default: DATA_ROOT/datasets/LATEST)."
    )
    split: SplitName = Field("test", description="Which split of the dataset to evaluate on.")
    manifest: Path | None = Field(
        None, description="A clip manifest to evaluate on (instead of a dataset split)."
    )
    out_dir: Path | None = Field(
        None, description="Where metrics.json and the plot go (default: RUN/eval/SPLIT)."
    )
    rerank_k: int = Field(
        0, ge=0, description="Also re-rank each bi top-K shortlist with pair scores."
    )
    plot: bool = Field(True, description="Save a UMAP map of the audio and text embeddings.")
    skip_missing: bool = Field(False, description="Leave out rows with missing audio or captions.")
    batch_size: int = Field(32, ge=1)


class EvaluateParams(SettingsParams, _EvaluateFields):
    """``evaluate-fsclap``: leak-free full-gallery retrieval metrics of a checkpoint."""

    @model_validator(mode="after")
    def _one_source(self):
        if self.manifest is not None and self.dataset is not None:
            raise ValueError("give a dataset (with split) or a manifest, not both")
        return self


def check_worker_paths(params: SettingsParams, settings) -> None:
    """A deployment's run starts in a temporary folder (a process worker deletes it afterwards):
    a relative path would put the data there. Refuse them before any work."""
    from prefect.runtime import deployment

    if deployment.id is None:  # run in this process: relative paths mean the caller's folder
        return
    paths = {
        **{name: getattr(params, name) for name in type(params).model_fields},
        "data_root": settings.data_root,
    }
    relative = sorted(
        name
        for name, value in paths.items()
        if isinstance(value, Path) and not value.expanduser().is_absolute()
    )
    if relative:
        raise FsclapError(
            f"relative path(s) in a deployment run: {', '.join(relative)}; flow runs start in a temporary "
            "folder on the worker: give absolute paths (data_root: set FSCLAP_DATA_ROOT on the worker)"
        )


# --- resolving defaults against the data root ---------------------------------------------


def dataset_split(dataset: Path, split: str) -> Path:
    path = Path(dataset) / f"{split}.parquet"
    if not path.is_file():
        raise FsclapError(f"dataset {dataset} has no {split} split ({path.name} not found)")
    return path


def default_run_dir(data_root: Path, dataset: Path) -> Path:
    """One training run per dataset version (as the demo does)."""
    return DataRoot(data_root).run_dir(f"fsclap-{Path(dataset).name}")


def manifests_or_splits(
    manifests: list[Path] | None, dataset: Path | None, data_root: Path, splits: list[str]
) -> tuple[list[Path], Path | None]:
    """Explicit manifests (each must exist), else the ``splits`` of ``dataset`` (default: the latest one).
    Returns the manifest paths and the dataset they came from (None for explicit manifests)."""
    if manifests is not None:
        for path in manifests:
            if not Path(path).is_file():
                raise FsclapError(f"manifest not found: {path}")
        return [Path(p) for p in manifests], None
    dataset = dataset if dataset is not None else DataRoot(data_root).datasets.latest_folder()
    return [dataset_split(dataset, split) for split in splits], dataset


def run_dir_or_default(
    run_dir: Path | None, dataset: Path | None, data_root: Path, missing: str
) -> Path:
    """An explicit run directory, else the dataset's default run; ``missing`` is the error without either."""
    if run_dir is not None:
        return Path(run_dir)
    if dataset is not None:
        return default_run_dir(data_root, dataset)
    raise FsclapError(missing)
