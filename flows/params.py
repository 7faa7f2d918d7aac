"""The flows' parameters, validated: one pydantic model per flow.

Each flow takes flat keyword parameters (its signature: the form the Prefect UI shows, and the
schema the server checks a deployment run against; its docstring's ``Args:`` are the form's
descriptions) and builds its model from them first thing (:func:`validated`): a value Prefect's
type check lets through but the model refuses (a negative retry count, a manifest without its
pair) fails the run with a one-line reason before any work. The models here hold the constraints
and checks, not the descriptions: those live once, in the flows' docstrings
(``tests/flows/test_params.py`` keeps the signatures, docstrings and models in step).

Every field left empty falls back to the worker's settings (``FSCLAP_*`` environment, the
``config_file``, ``overrides``), so a deployment can run with no parameters at all: the
nightly refresh rebuilds the data root (the deployment's ``data_root``, which ``fsclap prefect
setup`` sets, else ``$FSCLAP_DATA_ROOT``) from its ``sources.yaml``, training takes the latest
published dataset, evaluation the run trained on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fsclap.config import Profile, format_validation_error, load_settings
from fsclap.errors import FsclapError
from fsclap.layout import DataRoot
from model.train_config import PRESETS
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

    data_root: Path | None = None
    profile: Profile | None = None
    config_file: Path | None = None
    overrides: list[str] = Field(default_factory=list)

    @field_validator("overrides")
    @classmethod
    def _overrides_are_pairs(cls, values: list[str]) -> list[str]:
        return _check_overrides(values)

    def settings(self):
        overrides = list(self.overrides)
        if self.data_root is not None:
            overrides.append(f"data_root={self.data_root}")
        if self.profile is not None:
            overrides.append(f"profile={self.profile}")
        return load_settings(self.config_file, overrides)


Params = TypeVar("Params", bound=SettingsParams)


def validated(model: type[Params], arguments: dict[str, Any]) -> Params:
    """A flow's arguments as its parameter model; a value the model refuses raises a one-line
    :class:`FsclapError` (``invalid parameters: acquire_retries: Input should be ...``)."""
    try:
        return model(**arguments)
    except ValidationError as exc:
        raise FsclapError(f"invalid parameters: {format_validation_error(exc)}") from None


def settings_overrides(settings) -> list[str]:
    """``overrides`` that reproduce ``settings`` exactly in a flow (for in-process callers that
    hold a Settings object, e.g. the demo): every field as ``key=value`` (JSON is YAML)."""
    dumped = settings.model_dump(mode="json")
    return [f"{key}={json.dumps(value)}" for key, value in dumped.items()]


# Each flow's model lists its own fields first, then the settings fields (the flow's signature
# has the same order): pydantic orders fields of ``class M(SettingsParams, Own)`` as Own's, then
# SettingsParams'.


class _BuildCorpusFields(BaseModel):
    sources: Path | None = None
    stages: list[StageName] | None = Field(None, min_length=1)
    retry_failed: bool = False
    acquire_retries: int = Field(2, ge=0, le=10)
    acquire_retry_delay_s: float = Field(30.0, ge=0, le=3600)


class BuildCorpusParams(SettingsParams, _BuildCorpusFields):
    """``build-corpus``: sources -> discovery -> every stage over the episodes (incremental)."""

    def sources_path(self, data_root: Path) -> Path:
        return self.sources if self.sources is not None else DataRoot(data_root).sources_file


class _TrainFields(BaseModel):
    dataset: Path | None = None
    train_manifest: Path | None = None
    val_manifest: Path | None = None
    run_dir: Path | None = None
    train_config: Path | None = None
    train_overrides: list[str] = Field(default_factory=list)
    nproc_per_node: int = Field(1, ge=1, le=64)

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
    checkpoint: Path | None = None
    dataset: Path | None = None
    split: SplitName = "test"
    manifest: Path | None = None
    out_dir: Path | None = None
    rerank: int = Field(0, ge=0)
    plot: bool = True
    skip_missing: bool = False
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
    if str(paths.get("train_config")) in PRESETS:  # a preset's name, not a file
        del paths["train_config"]
    relative = sorted(
        name
        for name, value in paths.items()
        if isinstance(value, Path) and not value.expanduser().is_absolute()
    )
    if relative:
        raise FsclapError(
            f"relative path(s) in a deployment run: {', '.join(relative)}; flow runs start in a temporary "
            "folder on the worker: give absolute paths (data_root: fsclap prefect setup --data-root "
            "/abs/path sets it on every deployment)"
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
