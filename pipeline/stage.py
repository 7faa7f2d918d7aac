"""The stage interface of the corpus builder (NeMo SDP style: one small class per stage).

A stage turns one :class:`~pipeline.tables.Episode` into an updated copy, reading and writing
files under the data root. It is configured by a pydantic ``Config`` (unknown keys are errors),
has a ``name`` and a ``version``, and derives a **resume key** per episode from

    (stage name, stage version, config hash, content hash of the stage's input)

so an episode whose stored key equals the current key (and whose outputs are on disk) is
finished and is skipped. Keys chain through content hashes (acquire records the media's
SHA-256, extract keys on it and records the WAV's SHA-256, separate keys on that), so a change
upstream re-runs exactly what depends on it. Stages keep no global state: the runner, a Prefect
task or a test can call :meth:`Stage.run` on any episode in any order.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsclap.config import format_validation_error
from fsclap.errors import FsclapError
from fsclap.io import write_json
from fsclap.layout import DataRoot
from pipeline.tables import Episode


class StageError(FsclapError):
    """One episode failed at one stage: recorded as a failures row while the run goes on.

    ``retryable`` errors (network trouble) are tried again on the next run; the others
    (the content itself is bad) are retried only when the input or the stage config changes,
    or with ``--retry-failed``.
    """

    retryable: ClassVar[bool] = False

    @property
    def error_type(self) -> str:
        return type(self).__name__


class StageConfig(BaseModel):
    """Base of every stage's config. Fields named in ``operational`` change how the work is
    done (parallelism, retries, rate limits, device), not what it produces, so they stay out
    of the config hash and changing them never invalidates finished work."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    operational: ClassVar[frozenset[str]] = frozenset({"workers"})

    workers: int = Field(1, ge=1, description="Episodes processed at once by this stage.")


class StageContext(BaseModel):
    """What every stage may know about the run: where the data lives and which device to use."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data_root: Path
    device: str = "cpu"
    seed: int = 0
    profile: str = "offline"

    @property
    def layout(self) -> DataRoot:
        """Where every stage output lives under the data root."""
        return DataRoot(self.data_root)

    def rel(self, path: str | Path) -> str:
        """How a path is stored in a manifest: relative to the data root when inside it."""
        path = Path(path).absolute()
        root = self.data_root.absolute()
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)

    def abs(self, stored: str | Path) -> Path:
        """The inverse of :meth:`rel`."""
        path = Path(stored)
        return path if path.is_absolute() else self.data_root / path


def clear_stale_temporaries(target: Path) -> int:
    """Delete temporary files a killed run left beside ``target`` (``fsclap.io.atomic_path``
    names them ``.<name>.<random>.tmp<suffix>``). Safe because one runner owns a data root at a
    time (:class:`pipeline.tables.RunLock`) and one worker owns an episode. Returns the count."""
    removed = 0
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{target.name}.*.tmp*"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def short_hash(obj: Any, length: int = 16) -> str:
    """A stable hex digest of a JSON-able object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_states(paths: list[Path]) -> list[list]:
    """``[path, size, mtime_ns]`` per file (``[path, None]`` when missing): its state, not its content."""
    states: list[list] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            states.append([str(path), None])
        else:
            states.append([str(path), stat.st_size, stat.st_mtime_ns])
    return states


class FileStateCache:
    """Values computed from files (a table's index, a content hash), computed again only when a
    file's (mtime_ns, size) changed: a refresh asks for them for every episode. Thread-safe."""

    def __init__(self, compute: Callable[[Path], Any]):
        self.compute = compute
        self._lock = threading.Lock()
        self._known: dict[str, tuple[tuple[int, int], Any]] = {}

    def get(self, path: str | Path, stat: os.stat_result | None = None) -> Any:
        """The value for ``path`` (``stat``: its stat when the caller has it); OSError when it
        cannot be stat'ed."""
        stat = stat or os.stat(path)
        state = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._known.get(str(path))
            if known is None or known[0] != state:
                known = self._known[str(path)] = (state, self.compute(Path(path)))
            return known[1]


def _stamp_record(inputs: Any, outputs: list[Path]) -> dict:
    return {"inputs": short_hash(inputs, 32), "outputs": file_states(outputs)}


def is_up_to_date(stamp: Path, inputs: Any, outputs: list[Path]) -> bool:
    """Whether ``stamp`` (written by :func:`write_stamp`) says ``outputs`` were made from ``inputs``
    (any JSON-able description, e.g. :func:`file_states` of the input files plus the config) and
    are unchanged since: a corpus-wide step then skips rebuilding them. Files are compared by
    (path, size, mtime_ns), so any rewrite of an input or an output (atomic or in place) counts
    as a change."""
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _stamp_record(inputs, outputs)


def write_stamp(stamp: Path, inputs: Any, outputs: list[Path]) -> None:
    """Record that ``outputs`` were just made from ``inputs`` (see :func:`is_up_to_date`)."""
    write_json(stamp, _stamp_record(inputs, outputs))


class Stage(ABC):
    """One corpus-builder stage. Subclasses set ``name``, ``version``, ``Config``, ``done_status``
    and implement :meth:`input_hash`, :meth:`outputs` and :meth:`process`."""

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    done_status: ClassVar[str]

    def __init__(self, config: StageConfig | dict | None = None, *, context: StageContext):
        if config is None or isinstance(config, dict):
            try:
                config = self.Config(**(config or {}))
            except ValidationError as exc:
                raise FsclapError(f"stages.{self.name}: {format_validation_error(exc)}") from None
        self.config = config
        self.context = context
        self._setup_lock = threading.Lock()
        self._is_set_up = False
        self._config_hash: str | None = None
        self.calls = 0  # episodes actually processed by this instance (resume tests, summaries)

    # --- identity ---------------------------------------------------------------------------

    def identity(self) -> dict:
        """Everything that determines this stage's output besides its input."""
        params = self.config.model_dump(mode="json")
        for field in self.Config.operational:
            params.pop(field, None)
        return {
            "stage": self.name,
            "version": self.version,
            "config": params,
            **self.extra_identity(),
        }

    def extra_identity(self) -> dict:
        """Identity beyond the config, e.g. which model weights are loaded."""
        return {}

    @property
    def config_hash(self) -> str:
        """The hash of :meth:`identity`, computed once per instance: the config is frozen and the
        extra identity names the models this instance loads (some read model files or package
        metadata to say so, too slow to repeat for every episode's key). A changed config or model
        therefore takes a new stage instance, as every run builds (:func:`pipeline.runner.build_stages`)."""
        if getattr(self, "_config_hash", None) is None:
            self._config_hash = short_hash(self.identity())
        return self._config_hash

    def key(self, episode: Episode) -> str | None:
        """The resume key of ``episode`` at this stage, or None when its input is not there yet."""
        content = self.input_hash(episode)
        if content is None:
            return None
        return short_hash({"config": self.config_hash, "input": content}, 24)

    # --- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def input_hash(self, episode: Episode) -> str | None:
        """Content hash of this stage's input for ``episode`` (None: upstream not finished)."""

    @abstractmethod
    def outputs(self, episode: Episode) -> list[Path]:
        """Files this stage produced for ``episode`` (must exist for it to count as done)."""

    @abstractmethod
    def process(self, episode: Episode) -> Episode:
        """Do the work for one episode; return the updated episode or raise :class:`StageError`."""

    def check(self) -> None:
        """Fail fast before any work when a resource (model weights, binaries) is missing."""

    def models(self) -> list[str]:
        """Ids (``fsclap models list``) of the local models this stage loads; the runner verifies
        them (files, checksums, a load and forward pass) before any work."""
        return []

    def setup(self) -> None:
        """Load heavy resources once; called lazily (thread-safe) before the first episode."""

    def finish(self) -> Any:
        """The corpus-wide step after this run's per-episode work (the segments table, the clip
        manifest, the dataset); executors call it once per run when :attr:`has_finish`."""
        return None

    @property
    def has_finish(self) -> bool:
        """Whether the stage overrides :meth:`finish` (executors add no step for the others)."""
        return type(self).finish is not Stage.finish

    # --- driving ----------------------------------------------------------------------------

    def is_done(self, episode: Episode, key: str | None = None) -> bool:
        """Whether ``episode`` is finished here (``key``: its resume key when the caller has it)."""
        key = key or self.key(episode)
        if key is None or episode.stamp(self.name).get("key") != key:
            return False
        return self.outputs_exist(episode)

    def outputs_exist(self, episode: Episode) -> bool:
        """Whether every file this stage wrote for ``episode`` is there."""
        return all(path.exists() for path in self.outputs(episode))

    def ensure_setup(self) -> None:
        with self._setup_lock:
            if not self._is_set_up:
                self.setup()
                self._is_set_up = True

    def run(self, episode: Episode) -> Episode:
        """Process ``episode`` and stamp the result with this stage's key, version and config."""
        key = self.key(episode)
        if key is None:
            raise StageError(f"{episode.episode_id}: input of stage {self.name} is not available")
        self.ensure_setup()
        with self._setup_lock:
            self.calls += 1
        result = self.process(episode)
        result.set_stamp(self.name, key=key, version=self.version, config=self.config_hash)
        result.status = self.done_status
        result.failed_stage = result.error = result.message = None
        return result

    def describe(self) -> str:
        return f"{self.name} v{self.version} ({self.config_hash})"
