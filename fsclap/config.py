"""One typed configuration for every command, flow and stage.

Precedence, lowest to highest: defaults < YAML file (``--config`` or ``FSCLAP_CONFIG``)
< environment (``FSCLAP_<FIELD>``, nested with ``__``, e.g. ``FSCLAP_MODEL_PATHS__DEMUCS``)
< ``--set key=value`` overrides (dotted keys for nested fields).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, YamlConfigSettingsSource

from fsclap.errors import FsclapError

Profile = Literal["offline", "paper"]

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "fsclap_config_file", default=None
)


class ModelPaths(BaseModel):
    """Explicit local paths of the paper profile's models. ``None`` means ``<models_dir>/<model id>``."""

    model_config = ConfigDict(extra="forbid")

    demucs: Path | None = None  # Demucs model repo folder holding htdemucs.yaml / <sig>.th
    paraformer: Path | None = None
    fsmn_vad: Path | None = None
    ct_punc: Path | None = None
    campplus: Path | None = None
    sensevoice: Path | None = None
    laion_clap: Path | None = None  # 630k-audioset-best.pt or a transformers ClapModel folder


class ModelHubs(BaseModel):
    """Where ``fsclap models pull`` downloads from. ModelScope and HuggingFace take their own
    variables (``MODELSCOPE_ENDPOINT``, ``HF_ENDPOINT``, ``MODELSCOPE_CACHE``, ``HF_HUB_CACHE``)."""

    model_config = ConfigDict(extra="forbid")

    demucs_url: str | None = Field(
        None, description="Mirror of https://dl.fbaipublicfiles.com/demucs/ (None: Demucs' own)."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="A hub that does not answer within this is offline."
    )


class Orchestration(BaseModel):
    """How the Prefect flows (``flows/``) and ``fsclap corpus build`` run their per-episode work."""

    model_config = ConfigDict(extra="forbid")

    task_runner: Literal["threads", "dask"] = Field(
        "threads",
        description="threads: a thread pool per stage in the flow's process (stages.<name>.workers wide); "
        "dask: tasks go to an existing Dask cluster (pip install 'fsclap[dask]', set dask_address).",
    )
    dask_address: str | None = Field(
        None, description="Scheduler address of the Dask cluster, e.g. tcp://scheduler:8786."
    )
    stage_resources: dict[str, dict[str, Annotated[float, Field(gt=0)]]] = Field(
        default_factory=dict,
        description="dask: Dask worker resources each task of a stage holds, by stage name, e.g. "
        "stage_resources.separate={GPU: 1} (its tasks then run only on workers started with "
        "--resources GPU=1). Default for a stage not named: {GPU: 1} when it loads a model and "
        "the device is cuda, else none; {} names none.",
    )
    result_cache: bool = Field(
        True,
        description="Persist each stage task's result under <data_root>/.prefect-results "
        "(keyed by the stage's resume key) so finished work the journal missed is reused.",
    )
    task_batch: int = Field(
        0,
        ge=0,
        description="Episodes per Prefect task, stage by stage (a batch holds consecutive episodes "
        "of one drama, run one after another; each still succeeds or fails alone). 0 = auto: one "
        "per task while a stage runs fewer than 200 episodes, else enough to keep a stage near "
        "200 tasks; 1 = one episode per task. Acquire always uses one; streaming builds batch "
        "only the stages that load a model (4 per task with 0).",
    )
    streaming: bool = Field(
        False,
        description="In-process builds (pipeline.runner.run_build): stream episodes through the "
        "stages (each moves to its next stage as soon as it finished one; all stages run at once) "
        "instead of stage by stage. The Prefect flow runs stage by stage.",
    )
    stream_queue: int = Field(
        4,
        ge=0,
        description="Streaming: episodes that may wait at a stage beyond its workers (backpressure).",
    )


class Settings(BaseSettings):
    """Global settings shared by the CLI, the flows and the library."""

    model_config = SettingsConfigDict(
        env_prefix="FSCLAP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_root: Path = Field(
        Path("data"), description="Where the corpus builder writes manifests, audio, datasets."
    )
    models_dir: Path = Field(
        Path("~/.cache/fsclap/models"),
        validation_alias=AliasChoices("models_dir", "FSCLAP_MODELS"),
        description="Root of the local model layout (env FSCLAP_MODELS).",
    )
    model_paths: ModelPaths = Field(default_factory=ModelPaths)
    model_hubs: ModelHubs = Field(default_factory=ModelHubs)
    profile: Profile = Field(
        "offline", description="offline: models shipped in wheels; paper: the paper's models."
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = 0
    workers: int = Field(
        2, ge=0, description="Parallel workers for data loading and per-episode work."
    )
    progress: bool | None = Field(
        None,
        description="Progress bars; default: on for a terminal, off in CI and on workers, where "
        "long loops log a progress line every 30 s instead.",
    )
    orchestration: Orchestration = Field(default_factory=Orchestration)
    stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Corpus-builder stage configs by stage name, e.g. stages.separate.method=demucs; "
        "each stage validates its own section (pipeline/).",
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        sources = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def model_path(self, model_id: str) -> Path:
        """Local path of a paper-profile model: the explicit override, else ``<models_dir>/<model_id>``."""
        explicit = getattr(self.model_paths, model_id, None)
        return Path(explicit).expanduser() if explicit else self.models_dir.expanduser() / model_id

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def report_progress(self) -> bool:
        """Whether evaluation and indexing report progress at all (a bar in a terminal, else log
        lines every 30 s: :func:`fsclap.log.progress`); ``progress: false`` turns it off."""
        return self.progress is not False


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=true"]`` -> ``{"a": {"b": 3}, "c": True}``. Values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FsclapError(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FsclapError(f"--set {key}: {part} is both a value and a section")
        node[parts[-1]] = value
    return tree


def load_settings(
    config_file: str | Path | None = None, overrides: Iterable[str] | dict | None = None
) -> Settings:
    """Build :class:`Settings` from defaults, a YAML file, the environment and ``--set`` overrides."""
    if config_file is None and os.environ.get("FSCLAP_CONFIG"):
        config_file = os.environ["FSCLAP_CONFIG"]
    if config_file is not None:
        config_file = Path(config_file).expanduser()
        if not config_file.is_file():
            raise FsclapError(f"config file not found: {config_file}")
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise FsclapError(
                f"config file {config_file} is not valid YAML: {str(exc).splitlines()[0]}"
            ) from None
        if not isinstance(loaded, dict):
            raise FsclapError(f"config file {config_file} must hold a mapping of settings")
    values = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise FsclapError(f"invalid settings: {format_validation_error(exc)}") from None
    finally:
        _CONFIG_FILE.reset(token)


def format_validation_error(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: message; field: message``."""
    parts = []
    for err in exc.errors():
        # a check across fields (a model validator) has no location; its message says it all
        message = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)
