"""The corpus builder's bookkeeping: ``DIR/manifests/episodes.parquet`` and ``failures.parquet``.

* :class:`Episode` is one row of the episodes table (a small typed record): a field for every
  column a stage writes. Columns that are not fields (written by a newer or an outside version)
  are kept in ``extra`` and written back unchanged.
* :class:`CorpusTables` holds both tables in memory for one runner process. Every change is
  first appended to a write-ahead journal (``manifests/.journal.jsonl``), and the Parquet files
  are rewritten atomically at the end and in between at most every ``flush_every_s`` seconds
  (or, on a large table, every :data:`FLUSH_SHARE` times as long as the last rewrite took, so
  rewrites stay a small share of the run however large the corpus). A killed run therefore loses
  no finished work: the next run replays the journal. Each change reaches the operating system
  at once (a killed process loses nothing); the journal is fsync'd in groups, at most
  ``sync_every_s`` after a change, so a power cut loses at most that last moment's changes
  (their episodes are redone), and a run pays one fsync per group, not one per change.
* :class:`RunLock` keeps two runners from writing the same data root at once.

The failures table holds the *current* failures, one row per (stage, item_id), with the number
of runs that hit it (``attempts``); an item that later succeeds at that stage leaves the table.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from fsclap.errors import FsclapError
from fsclap.io import parquet_problem, write_parquet
from fsclap.layout import DataRoot

STAMP_PARTS = ("key", "version", "config")
#: Between two throttled rewrites of the Parquet tables, at least this many times as long as the
#: last rewrite took (rewrites then cost at most ~1/FLUSH_SHARE of the run: linear, not quadratic,
#: in the corpus size).
FLUSH_SHARE = 20


@dataclass(frozen=True)
class Failure:
    """One row of the failures table: the current failure of one item at one stage."""

    stage: str  # discover | a stage name
    item_id: str  # an episode id, or a drama id / URL for discovery problems
    drama_id: str | None
    error: str  # the error type, e.g. DownloadError, NoAudioSignal
    message: str  # one line
    time: str  # ISO 8601, UTC: the last time it failed
    first_time: str  # the first time it failed
    attempts: int  # runs that hit it
    retryable: bool  # network trouble (tried again next run) or the content itself
    key: str | None = None  # the resume key it failed under (a changed input is tried again)

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Failure:
        row = {k: _clean(v) for k, v in row.items() if k in FAILURE_COLUMNS}
        return cls(
            **{
                "drama_id": None,  # tables from before the column was added
                **row,
                "time": _iso(row.get("time")),
                "first_time": _iso(row.get("first_time")),
                "attempts": int(row.get("attempts") or 1),
                "retryable": bool(row.get("retryable")),
            }
        )


FAILURE_COLUMNS = [f.name for f in dataclasses.fields(Failure)]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: The integer fields of :class:`Episode` (Parquet stores an integer column with gaps as float).
INT_FIELDS = (
    "episode_index",
    "media_bytes",
    "source_mtime_ns",
    "audio_stream",
    "source_sample_rate",
    "source_channels",
    "sample_rate",
    "channels",
    "n_segments",
    "n_candidate_segments",
    "n_episode_speakers",
    "n_kept_segments",
    "n_drama_speakers",
    "n_measured_clips",
    "n_unreadable_clips",
    "n_clips",
)


@dataclass
class Episode:
    """One episode of one drama, as it moves through the stages.

    Paths are stored relative to the data root when they lie inside it (absolute otherwise,
    e.g. a local source registered in place). Stage stamps (resume key, stage version, config
    hash) are written as ``<stage>_key``, ``<stage>_version``, ``<stage>_config`` columns.
    """

    episode_id: str
    drama_id: str
    source_url: str
    source_key: str
    source_kind: str = "url"  # url | file
    episode_index: int | None = None
    drama_title: str | None = None
    language: str | None = None
    title: str | None = None  # metadata only: never used to build a path
    status: str = "discovered"
    failed_stage: str | None = None
    error: str | None = None
    message: str | None = None
    retryable: bool | None = None
    failed_key: str | None = None
    # acquire
    media_path: str | None = None
    media_sha256: str | None = None
    media_bytes: int | None = None
    source_mtime_ns: int | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_stream: int | None = None
    source_sample_rate: int | None = None
    source_channels: int | None = None
    media_duration_s: float | None = None  # as the container announces it
    duration_s: float | None = None  # decoded audio once extracted (the container's before)
    # extract
    audio_path: str | None = None
    audio_sha256: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    mono_mean: float | None = None
    mono_std: float | None = None
    # separate
    vocals_path: str | None = None
    vocals_sha256: str | None = None
    accompaniment_path: str | None = None
    separation: str | None = None  # which method ran: htdemucs | repet | none
    separation_model: str | None = None
    # diarize
    segments_path: str | None = None  # the episode's segments table
    segments_sha256: str | None = None
    n_segments: int | None = None  # segments kept for the consistency stage
    n_candidate_segments: int | None = None  # before the length/overlap rules
    n_episode_speakers: int | None = None
    speech_s: float | None = None
    diarize_outcome: str | None = None  # ok | no_speech
    # consistency
    n_kept_segments: int | None = None
    kept_s: float | None = None
    n_drama_speakers: int | None = None
    # caption
    n_measured_clips: int | None = None
    n_unreadable_clips: int | None = None
    # publish
    n_clips: int | None = None  # clips of this episode in the published dataset
    updated_at: str | None = None
    stamps: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def stamp(self, stage: str) -> dict[str, str]:
        return self.stamps.get(stage, {})

    def set_stamp(self, stage: str, **values: str) -> None:
        self.stamps[stage] = dict(values)

    def copy(self) -> Episode:
        return dataclasses.replace(
            self, stamps={k: dict(v) for k, v in self.stamps.items()}, extra=dict(self.extra)
        )

    def to_row(self) -> dict[str, Any]:
        row = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("stamps", "extra")
        }
        for stage, stamp in self.stamps.items():
            for part in STAMP_PARTS:
                row[f"{stage}_{part}"] = stamp.get(part)
        row.update(self.extra)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Episode:
        row = {k: _clean(v) for k, v in row.items()}
        names = {f.name for f in dataclasses.fields(cls)} - {"stamps", "extra"}
        stages = {c[: -len("_key")] for c in row if c.endswith("_key")}
        stages = {s for s in stages if all(f"{s}_{p}" in row for p in STAMP_PARTS)}
        stamps = {s: {p: row.pop(f"{s}_{p}") for p in STAMP_PARTS} for s in sorted(stages)}
        stamps = {s: v for s, v in stamps.items() if v.get("key")}
        known = {k: row.pop(k) for k in list(row) if k in names}
        for name in INT_FIELDS:
            if known.get(name) is not None:
                known[name] = int(known[name])
        return cls(**known, stamps=stamps, extra=row)


def _clean(value: Any) -> Any:
    """Parquet/pandas missing values (NaN, NA, NaT) as None; numpy scalars as Python ones."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


class RunLock:
    """An exclusive lock on ``DIR/manifests/.lock`` for the duration of a run."""

    def __init__(self, data_root: Path):
        self.path = DataRoot(data_root).lock
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise FsclapError(
                f"another corpus build is writing {self.path.parent.parent} (lock {self.path})"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


class CorpusTables:
    """The episodes and failures tables of one data root, with a write-ahead journal."""

    def __init__(
        self,
        data_root: str | Path,
        flush_every_s: float = 5.0,
        read_only: bool = False,
        sync_every_s: float = 0.5,
    ):
        self.read_only = read_only
        self.data_root = Path(data_root)
        layout = DataRoot(self.data_root)
        self.dir = layout.manifests
        self.episodes_path = layout.episodes_table
        self.failures_path = layout.failures_table
        self.journal_path = layout.journal
        self.flush_every_s = flush_every_s
        self.sync_every_s = sync_every_s  # 0: fsync every change
        self._lock = threading.RLock()
        self._journal = None
        self._last_flush = time.monotonic()
        self._flush_cost = 0.0  # seconds the last rewrite of the Parquet tables took
        self._last_sync = time.monotonic()
        self._sync_timer: threading.Timer | None = None
        self._dirty = False
        self.episodes: dict[str, Episode] = {}
        self.failures: dict[tuple[str, str], Failure] = {}
        self._load()

    # --- loading ----------------------------------------------------------------------------

    def _load(self) -> None:
        if self.episodes_path.exists():
            for row in _read_parquet(self.episodes_path, "finished work is then redone").to_dict(
                "records"
            ):
                episode = Episode.from_row(row)
                self.episodes[episode.episode_id] = episode
        if self.failures_path.exists():
            for row in _read_parquet(
                self.failures_path, "failures are then recorded afresh"
            ).to_dict("records"):
                failure = Failure.from_row(row)
                self.failures[(failure.stage, failure.item_id)] = failure
        replayed = self._replay_journal()
        if replayed and not self.read_only:
            self._dirty = True
            self.flush(force=True)

    def _replay_journal(self) -> int:
        if not self.journal_path.exists():
            return 0
        count = 0
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a kill: everything before it is intact
            kind = entry.get("kind")
            if kind == "episode":
                episode = Episode.from_row(entry["row"])
                self.episodes[episode.episode_id] = episode
            elif kind == "failure":
                failure = Failure.from_row(entry["row"])
                self.failures[(failure.stage, failure.item_id)] = failure
            elif kind == "resolve":
                self.failures.pop((entry["stage"], entry["item_id"]), None)
            count += 1
        return count

    # --- changes ----------------------------------------------------------------------------

    def _log(self, entry: dict) -> None:
        if self.read_only:
            raise RuntimeError("these tables were opened read-only")
        if self._journal is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._journal.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
        self._journal.flush()  # in the operating system's hands: a killed process loses nothing
        self._dirty = True
        if time.monotonic() - self._last_sync >= self.sync_every_s:
            self._sync()
        elif self._sync_timer is None:  # this change is on disk within sync_every_s
            self._sync_timer = threading.Timer(self.sync_every_s, self._sync)
            self._sync_timer.daemon = True
            self._sync_timer.start()

    def _sync(self) -> None:
        """fsync the journal (every change written so far survives a power cut)."""
        with self._lock:
            if self._sync_timer is not None:
                self._sync_timer.cancel()
                self._sync_timer = None
            if self._journal is not None:
                os.fsync(self._journal.fileno())
            self._last_sync = time.monotonic()

    def save_episode(self, episode: Episode) -> None:
        with self._lock:
            episode.updated_at = utc_now()
            self.episodes[episode.episode_id] = episode
            self._log({"kind": "episode", "row": episode.to_row()})
            self.flush()

    def record_failure(
        self,
        stage: str,
        item_id: str,
        error: str,
        message: str,
        *,
        drama_id: str | None = None,
        retryable: bool = False,
        key: str | None = None,
    ) -> None:
        with self._lock:
            now = utc_now()
            previous = self.failures.get((stage, item_id))
            failure = Failure(
                stage=stage,
                item_id=item_id,
                drama_id=drama_id,
                error=error,
                message=_one_line(message),
                time=now,
                first_time=previous.first_time if previous else now,
                attempts=previous.attempts + 1 if previous else 1,
                retryable=bool(retryable),
                key=key,
            )
            self.failures[(stage, item_id)] = failure
            self._log({"kind": "failure", "row": failure.to_row()})
            self.flush()

    def resolve_failure(self, stage: str, item_id: str) -> None:
        with self._lock:
            if (stage, item_id) in self.failures:
                del self.failures[(stage, item_id)]
                self._log({"kind": "resolve", "stage": stage, "item_id": item_id})

    def failures_of(self, stage: str) -> list[Failure]:
        with self._lock:
            return [failure for (s, _), failure in self.failures.items() if s == stage]

    # --- writing ----------------------------------------------------------------------------

    def flush(self, force: bool = False) -> None:
        """Rewrite the Parquet tables atomically (throttled unless ``force``) and reset the journal."""
        with self._lock:
            interval = max(self.flush_every_s, FLUSH_SHARE * self._flush_cost)
            if not self._dirty or (not force and time.monotonic() - self._last_flush < interval):
                return
            start = time.monotonic()
            write_parquet(self.episodes_path, self.episodes_frame())
            write_parquet(self.failures_path, self.failures_frame())
            if self._sync_timer is not None:  # the tables now hold what the journal did
                self._sync_timer.cancel()
                self._sync_timer = None
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self.journal_path.unlink(missing_ok=True)
            self._dirty = False
            self._last_flush = time.monotonic()
            self._flush_cost = self._last_flush - start

    def close(self) -> None:
        self.flush(force=True)

    def __enter__(self) -> CorpusTables:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def episodes_frame(self) -> pd.DataFrame:
        rows = [e.to_row() for e in sorted(self.episodes.values(), key=_episode_order)]
        frame = (
            pd.DataFrame(rows)
            if rows
            else pd.DataFrame(columns=list(Episode.__dataclass_fields__)[:-2])
        )
        for name in INT_FIELDS:
            if name in frame:
                frame[name] = frame[name].astype("Int64")
        if "retryable" in frame:
            frame["retryable"] = frame["retryable"].astype("boolean")
        return frame

    def failures_frame(self) -> pd.DataFrame:
        failures = sorted(self.failures.values(), key=lambda f: (f.time, f.stage, f.item_id))
        frame = pd.DataFrame([f.to_row() for f in failures], columns=FAILURE_COLUMNS)
        for name in ("time", "first_time"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        frame["attempts"] = frame["attempts"].astype("int64")
        frame["retryable"] = frame["retryable"].astype(bool)
        return frame


def _episode_order(episode: Episode):
    return (
        episode.drama_id,
        episode.episode_index if episode.episode_index is not None else 1 << 30,
        episode.episode_id,
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat(timespec="seconds")
    return str(value)


def _one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text[:500]


class UnreadableTable(FsclapError):
    """A table of the data root cannot be read (corrupt, truncated, not Parquet)."""


def _read_parquet(path: Path, lost: str) -> pd.DataFrame:
    """A table the builder wrote; a corrupt one is a one-line error, never a traceback (the tables
    are replaced atomically, so this means damage from outside: a disk fault, a copy cut short).
    ``lost``: what moving the table away costs."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise UnreadableTable(
            f"{path} is not a readable Parquet table ({parquet_problem(exc, path)[:120]}); "
            "restore it from a copy, "
            f"or move it away to start the table again ({lost})"
        ) from None


def read_episodes(data_root: str | Path) -> pd.DataFrame:
    """The episodes table of a data root (empty frame when the builder has not run)."""
    return (
        CorpusTables(data_root, read_only=True).episodes_frame()
        if DataRoot(data_root).manifests.exists()
        else pd.DataFrame()
    )


def read_failures(data_root: str | Path) -> pd.DataFrame:
    return (
        CorpusTables(data_root, read_only=True).failures_frame()
        if DataRoot(data_root).manifests.exists()
        else pd.DataFrame()
    )


def episodes_of(tables: CorpusTables, ids: Iterable[str]) -> list[Episode]:
    return [tables.episodes[i] for i in ids if i in tables.episodes]
