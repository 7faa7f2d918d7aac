"""The corpus-build engine: one plan for every build, whatever executes the work.

A build is planned here and only here; an *executor* runs the per-episode work the plan hands it
and reports one :class:`Outcome` per episode. Two executors exist: the in-process thread pool of
:mod:`pipeline.runner` (``fsclap corpus build``) and the Prefect flow of :mod:`flows.build_corpus`
(one task per episode). Both therefore discover, decide, journal, finish and summarise alike.

What :meth:`CorpusBuild.run` does, under the data root's :class:`~pipeline.tables.RunLock`:

1. **discover** the sources' episodes (through the executor, so Prefect shows it as a task) and
   record them (:func:`record_discovery`: new episodes added, listing fields refreshed, the
   discovery failures of these dramas replaced);
2. for each stage in pipeline order, **decide** per episode (:func:`decide`):

   * ``blocked``      — it failed at an earlier stage (or its input is missing);
   * ``known_failed`` — it failed here before with a non-retryable error and neither its input
     nor the stage config changed (``retry_failed`` forces a new attempt);
   * ``done``         — its stored resume key equals the current one and the outputs exist
     (:func:`advance_status` restores a status a drama-wide re-run set back);
   * ``run``          — everything else: handed to the executor;

3. **journal** each outcome as it arrives (the engine is the tables' only writer, so a killed run
   resumes where it stopped and a repeated run does no work);
4. **finish** the stage (its corpus-wide step: segments table, clip manifest, dataset) and, after
   acquire, give byte-identical media to one episode (:func:`mark_duplicate_content`);
5. **summarise** (:class:`BuildSummary`).

:meth:`CorpusBuild.next_stage` answers the same question per episode (which stage it needs next),
the unit a streaming executor schedules.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fsclap.config import Settings
from fsclap.layout import DataRoot
from fsclap.log import get_logger
from pipeline.acquire import Acquire, AcquireConfig, DuplicateContent, YtdlpClient
from pipeline.sources import Discovery, Sources
from pipeline.stage import Stage
from pipeline.tables import CorpusTables, Episode, Failure, RunLock

log = get_logger("pipeline.engine")

#: Episode fields discovery owns; a stage never changes them, so a result computed in an earlier
#: run (a Prefect cache hit) takes them from the current listing.
LISTING_FIELDS = (
    "drama_id",
    "source_url",
    "source_key",
    "source_kind",
    "episode_index",
    "drama_title",
    "language",
    "title",
)

DECISIONS = ("run", "done", "known_failed", "blocked")


# --- what executors report --------------------------------------------------------------------


@dataclass
class Outcome:
    """One episode at one stage, as the executor saw it: the updated episode, or why it failed."""

    episode: Episode  # as handed to the executor
    result: Episode | None = None
    error: str = ""
    message: str = ""
    retryable: bool = True
    cached: bool = False  # finished in an earlier run (Prefect's result cache), not redone

    @property
    def ok(self) -> bool:
        return self.result is not None


class Executor(Protocol):
    """Runs what the engine plans. ``run_stage`` yields one :class:`Outcome` per episode given,
    in any order, as each finishes; it never writes the tables."""

    def discover(self, sources: Sources, lister: Callable) -> Discovery: ...

    def run_stage(self, stage: Stage, episodes: list[Episode]) -> Iterable[Outcome]: ...

    def finish(self, stage: Stage) -> Any: ...


# --- summaries --------------------------------------------------------------------------------


@dataclass
class StageSummary:
    name: str
    identity: str
    counts: Counter = field(default_factory=Counter)  # run, done, failed, blocked, known_failed
    cached: int = 0  # of the "done": results taken from the executor's cache
    seconds: float = 0.0  # spent on this stage's per-episode work
    errors: Counter = field(default_factory=Counter)  # failures by error type
    audio_s: float = 0.0  # audio of the episodes this stage ran on in this run

    @property
    def audio_hours_per_hour(self) -> float:
        """Hours of audio the stage got through per hour of wall time in this run (its speed)."""
        return self.audio_s / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        c = self.counts
        cached = f"  (cached {self.cached})" if self.cached else ""
        return (
            f"{self.name:<9} ran {c['run']:>4}  failed {c['failed']:>3}  already done {c['done']:>4}  "
            f"kept failed {c['known_failed']:>3}  blocked {c['blocked']:>3}   [{self.identity}]{cached}"
        )


@dataclass
class BuildSummary:
    data_root: Path
    dramas: int = 0
    skipped_dramas: list[str] = field(default_factory=list)
    episodes: int = 0
    stages: list[StageSummary] = field(default_factory=list)
    finished: int = 0
    hours: float = 0.0
    failure_rows: list[Failure] = field(default_factory=list)  # the current failures, sorted
    finished_steps: dict[str, Any] = field(default_factory=dict)  # stage name -> what finish() gave

    def count_finished(self, tables: CorpusTables, ids: list[str], stages: list[Stage]) -> None:
        """Episodes through every stage of the run (and their hours), and the current failures."""
        last = stages[-1].done_status if stages else None
        finished = [tables.episodes[i] for i in ids if tables.episodes[i].status == last]
        self.finished = len(finished)
        self.hours = sum(e.duration_s or 0.0 for e in finished) / 3600.0
        self.failure_rows = sorted(tables.failures.values(), key=lambda f: (f.stage, f.item_id))

    @property
    def failures(self) -> int:
        """The data root's current failures (what ``failures.parquet`` holds after the run)."""
        return len(self.failure_rows)

    def outcome(self) -> str:
        """One line: what finished and what failed (a Prefect run's state message)."""
        return (
            f"{self.finished} of {self.episodes} episodes through every stage; {self.failures} "
            f"failure(s) recorded in {DataRoot(self.data_root).failures_table}"
        )

    @property
    def work_done(self) -> int:
        """Episodes processed (successfully or not) by any stage in this run."""
        return sum(s.counts["run"] + s.counts["failed"] for s in self.stages)

    def render(self) -> str:
        layout = DataRoot(self.data_root)
        lines = [
            f"corpus build: {self.dramas} dramas ({len(self.skipped_dramas)} skipped), {self.episodes} episodes",
            *("  " + s.line() for s in self.stages),
            f"  finished all stages: {self.finished} episodes, {self.hours:.2f} h of audio",
            f"  failures: {self.failures} (see {layout.failures_table})",
            f"  episodes: {layout.episodes_table}",
        ]
        return "\n".join(lines)


# --- the plan ---------------------------------------------------------------------------------


class CorpusBuild:
    """One build of ``stages`` over ``sources`` into ``settings.data_root`` (resumable, idempotent)."""

    def __init__(
        self,
        settings: Settings,
        sources: Sources,
        stages: list[Stage],
        *,
        retry_failed: bool = False,
    ):
        self.settings = settings
        self.sources = sources
        self.stages = stages
        self.retry_failed = retry_failed
        self.data_root = Path(settings.data_root).expanduser()
        self.order = {s.name: i for i, s in enumerate(stages)}

    def lister(self) -> Callable:
        """How discovery lists a playlist: the acquire stage's client (its rate limits and
        cookies), or one built from the settings when acquire is not part of this run."""
        acquire = next((s for s in self.stages if isinstance(s, Acquire)), None)
        if acquire is not None:
            return acquire.client.list_entries
        config = AcquireConfig(**self.settings.stages.get("acquire", {}))
        return YtdlpClient(config).list_entries

    def decide(self, stage: Stage, episode: Episode) -> str:
        return decide(stage, episode, self.order, self.retry_failed)

    def next_stage(self, episode: Episode) -> tuple[Stage, str] | None:
        """The first stage ``episode`` is not done with, and what happens there (``run``,
        ``known_failed`` or ``blocked``); None when it is done with every stage of the build."""
        for stage in self.stages:
            decision = self.decide(stage, episode)
            if decision != "done":
                return stage, decision
        return None

    def plan_stage(
        self, stage: Stage, ids: list[str], tables: CorpusTables
    ) -> tuple[list[Episode], StageSummary]:
        """The episodes ``stage`` must run, and a summary counting the others by decision."""
        summary = StageSummary(stage.name, stage.describe())
        todo: list[Episode] = []
        for episode_id in ids:
            episode = tables.episodes[episode_id]
            decision = self.decide(stage, episode)
            if decision == "run":
                todo.append(episode)
                continue
            summary.counts[decision] += 1
            if decision == "done":
                advance_status(tables, stage, episode, self.stages)
        return todo, summary

    def record(
        self, tables: CorpusTables, stage: Stage, outcome: Outcome, summary: StageSummary
    ) -> None:
        """Journal one outcome at once (a killed run loses no finished episode)."""
        episode = outcome.episode
        if outcome.ok:
            tables.save_episode(with_listing(outcome.result, episode))
            tables.resolve_failure(stage.name, episode.episode_id)
            if outcome.cached:
                summary.counts["done"] += 1
                summary.cached += 1
            else:
                summary.counts["run"] += 1
                summary.audio_s += outcome.result.duration_s or 0.0
            return
        record_stage_failure(
            tables, stage, episode, outcome.error, outcome.message, outcome.retryable
        )
        summary.counts["failed"] += 1
        summary.errors[outcome.error] += 1

    def run(self, executor: Executor) -> BuildSummary:
        summary = BuildSummary(data_root=self.data_root)
        with RunLock(self.data_root), CorpusTables(self.data_root) as tables:
            discovery = executor.discover(self.sources, self.lister())
            ids = record_discovery(tables, discovery)
            summary.dramas, summary.episodes = len(discovery.dramas), len(ids)
            summary.skipped_dramas = list(discovery.skipped_dramas)
            log.info(
                "discovered %d episodes of %d dramas (%d skipped)",
                len(ids),
                len(discovery.dramas),
                len(discovery.skipped_dramas),
            )
            for stage in self.stages:
                todo, stage_summary = self.plan_stage(stage, ids, tables)
                if todo:
                    start = time.perf_counter()
                    for outcome in executor.run_stage(stage, todo):
                        self.record(tables, stage, outcome, stage_summary)
                    stage_summary.seconds = time.perf_counter() - start
                log.info("%s", stage_summary.line())
                summary.stages.append(stage_summary)
                if stage.has_finish:
                    tables.flush(force=True)  # the corpus-wide step reads what the tables hold
                    summary.finished_steps[stage.name] = executor.finish(stage)
                if isinstance(stage, Acquire):
                    mark_duplicate_content(tables, ids, stage)
            summary.count_finished(tables, ids, self.stages)
        log.info(
            "corpus build finished: %d/%d episodes through all stages, %d failures",
            summary.finished,
            summary.episodes,
            summary.failures,
        )
        return summary


# --- the steps, one function each -------------------------------------------------------------


def record_discovery(tables: CorpusTables, discovery: Discovery) -> list[str]:
    """Add new episodes, refresh the listing fields of known ones, and replace the discovery
    failures of the dramas in this sources file. Returns the episode ids to process."""
    for found in discovery.episodes:
        known = tables.episodes.get(found.episode_id)
        if known is None:
            tables.save_episode(found)
            continue
        if any(getattr(known, f) != getattr(found, f) for f in LISTING_FIELDS):
            tables.save_episode(with_listing(known, found))
    current = {(p.stage, p.item_id) for p in discovery.problems}
    dramas = set(discovery.dramas)
    for failure in tables.failures_of("discover"):
        if failure.drama_id in dramas and (failure.stage, failure.item_id) not in current:
            tables.resolve_failure(failure.stage, failure.item_id)
    for problem in discovery.problems:
        log.warning("%s: %s", problem.error, problem.message)
        known = tables.failures.get((problem.stage, problem.item_id))
        if (
            known
            and (known.error, known.message) == (problem.error, problem.message)
            and not problem.retryable
        ):
            continue  # unchanged since the last run: nothing to write
        tables.record_failure(
            problem.stage,
            problem.item_id,
            problem.error,
            problem.message,
            drama_id=problem.drama_id,
            retryable=problem.retryable,
        )
    return [e.episode_id for e in discovery.episodes]


def with_listing(episode: Episode, listed: Episode) -> Episode:
    """``episode`` with the listing fields of ``listed`` (a copy when any differs)."""
    if all(getattr(episode, f) == getattr(listed, f) for f in LISTING_FIELDS):
        return episode
    updated = episode.copy()
    for name in LISTING_FIELDS:
        setattr(updated, name, getattr(listed, name))
    return updated


def decide(stage: Stage, episode: Episode, order: dict[str, int], retry_failed: bool) -> str:
    """What ``stage`` does with ``episode``: run, done, blocked or known_failed (see module doc)."""
    if (
        episode.status == "failed"
        and episode.failed_stage in order
        and order[episode.failed_stage] < order[stage.name]
    ):
        return "blocked"
    key = stage.key(episode)
    if key is None:
        return "blocked"
    if episode.status == "failed" and episode.failed_stage == stage.name:
        if retry_failed or episode.retryable or episode.failed_key != key:
            return "run"
        return "known_failed"
    return "done" if stage.is_done(episode) else "run"


def advance_status(
    tables: CorpusTables, stage: Stage, episode: Episode, stages: list[Stage]
) -> None:
    """An episode done at ``stage`` whose status names an earlier stage of this run is done here again.

    A drama-wide stage (consistency) re-runs on a drama's finished episodes when a new episode of that
    drama arrives, which sets their status back; the later stages still count them as done (their
    resume keys match) and must restore the status. Statuses of stages outside this run, and
    failures, are left alone."""
    rank = {s.done_status: i for i, s in enumerate(stages)}
    here = next(i for i, s in enumerate(stages) if s is stage)
    if rank.get(episode.status, here) < here:
        advanced = episode.copy()
        advanced.status = stage.done_status
        tables.save_episode(advanced)


def record_stage_failure(
    tables: CorpusTables, stage: Stage, episode: Episode, error: str, message: str, retryable: bool
) -> None:
    log.warning("%s failed on %s: %s: %s", stage.name, episode.episode_id, error, message)
    failed = episode.copy()
    failed.status = "failed"
    failed.failed_stage = stage.name
    failed.error = error
    failed.message = " ".join(message.split())[:500]
    failed.retryable = retryable
    failed.failed_key = stage.key(episode)
    tables.save_episode(failed)
    tables.record_failure(
        stage.name,
        episode.episode_id,
        error,
        message,
        drama_id=episode.drama_id,
        retryable=retryable,
        key=failed.failed_key,
    )


def mark_duplicate_content(tables: CorpusTables, ids: list[str], acquire: Stage) -> None:
    """Byte-identical media under several episodes: one keeps it (the one marked before stays
    marked; else the furthest along; else the first in sources order), the others fail as
    ``DuplicateContent``. An episode whose twin has gone is released again."""

    def is_marked(episode: Episode) -> bool:
        return episode.status == "failed" and episode.error == DuplicateContent.__name__

    # every episode of the table takes part (not only this run's), so a twin listed in a source
    # that could not be listed this time still owns its content
    position = {episode_id: i for i, episode_id in enumerate(ids)}
    groups: dict[str, list[tuple[int, Episode]]] = {}
    for episode in list(tables.episodes.values()):
        if episode.media_sha256 is None or not acquire.is_done(episode):
            continue
        if (
            episode.status == "failed"
            and episode.failed_stage == acquire.name
            and not is_marked(episode)
        ):
            continue
        groups.setdefault(episode.media_sha256, []).append(
            (position.get(episode.episode_id, len(ids)), episode)
        )
    for members in groups.values():
        owner = min(members, key=lambda m: (is_marked(m[1]), -len(m[1].stamps), m[0]))[1]
        for _, episode in members:
            if episode is not owner and not is_marked(episode):
                message = f"same media content (sha256 {episode.media_sha256[:12]}...) as episode {owner.episode_id}; used once"
                record_stage_failure(
                    tables, acquire, episode, DuplicateContent.__name__, message, False
                )
            elif episode is owner and is_marked(episode):
                released = episode.copy()
                released.status = acquire.done_status
                released.failed_stage = released.error = released.message = None
                released.retryable = None
                released.failed_key = None
                tables.save_episode(released)
                tables.resolve_failure(acquire.name, episode.episode_id)
