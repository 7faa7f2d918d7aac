"""Plain-Python runner of the corpus builder: sources -> discovery -> each stage over the episodes.

Stages run in the order of :data:`PIPELINE` (one entry per stage: its name and a factory that
builds it from the settings). A later stage is added by appending its entry. For each stage the
runner decides per episode:

* ``blocked``  — the episode failed at an earlier stage (or its input is missing);
* ``failed``   — it failed here before with a non-retryable error and neither its input nor the
  stage config changed (``retry_failed`` forces a new attempt);
* ``done``     — its stored resume key equals the current one and the outputs exist;
* ``run``      — everything else; runs on a thread pool of ``stages.<name>.workers``.

Each finished episode is journalled at once (see :mod:`pipeline.tables`), so a killed run
resumes where it stopped and a repeated run does no work. A stage's heavy resources (models)
are checked before any stage runs and loaded once before its first episode.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from fsclap.config import Settings
from fsclap.errors import FsclapError
from fsclap.layout import DataRoot
from fsclap.log import get_logger, progress
from pipeline.acquire import Acquire, AcquireConfig, DuplicateContent, YtdlpClient
from pipeline.extract import Extract
from pipeline.separate import INPUT_FORMATS, Separate
from pipeline.sources import Discovery, Sources, discover, load_sources
from pipeline.stage import Stage, StageContext, StageError
from pipeline.tables import CorpusTables, Episode, RunLock

log = get_logger("pipeline.runner")


# --- the stage list -------------------------------------------------------------------------


def separate_config(settings: Settings) -> dict:
    """The separate stage's config with the profile's default method: Demucs on ``paper``,
    no separation (clearly recorded as ``none``) on ``offline``."""
    config = dict(settings.stages.get("separate", {}))
    config.setdefault("method", "demucs" if settings.profile == "paper" else "none")
    return config


def _acquire(settings: Settings, context: StageContext) -> Stage:
    return Acquire(settings.stages.get("acquire", {}), context=context)


def _extract(settings: Settings, context: StageContext) -> Stage:
    config = dict(settings.stages.get("extract", {}))
    method = separate_config(settings)["method"]
    rate, channels = INPUT_FORMATS.get(method, INPUT_FORMATS["none"])
    config.setdefault("sample_rate", rate)
    config.setdefault("channels", channels)
    config.setdefault("workers", max(settings.workers, 1))
    return Extract(config, context=context)


def _separate(settings: Settings, context: StageContext) -> Stage:
    return Separate(
        separate_config(settings), context=context, model_path=settings.model_path("demucs")
    )


def _diarize(settings: Settings, context: StageContext) -> Stage:
    from pipeline.diarize.stage import Diarize

    config = dict(settings.stages.get("diarize", {}))
    config.setdefault("backend", "funasr" if settings.profile == "paper" else "offline")
    return Diarize(config, context=context, settings=settings)


def _consistency(settings: Settings, context: StageContext) -> Stage:
    from pipeline.consistency import Consistency

    return Consistency(settings.stages.get("consistency", {}), context=context)


def _caption(settings: Settings, context: StageContext) -> Stage:
    from pipeline.caption import caption_stage

    return caption_stage(settings, context)


def _publish(settings: Settings, context: StageContext) -> Stage:
    from pipeline.publish import publish_stage

    return publish_stage(settings, context)


StageFactory = Callable[[Settings, StageContext], Stage]
#: The corpus builder's stages in run order; a new stage is added by appending its entry.
PIPELINE: list[tuple[str, StageFactory]] = [
    ("acquire", _acquire),
    ("extract", _extract),
    ("separate", _separate),
    ("diarize", _diarize),
    ("consistency", _consistency),
    ("caption", _caption),
    ("publish", _publish),
]
#: The first part of the corpus builder: media -> audio -> vocals.
AUDIO_STAGES = ["acquire", "extract", "separate"]


def stage_names() -> list[str]:
    return [name for name, _ in PIPELINE]


def build_stages(settings: Settings, only: list[str] | None = None) -> list[Stage]:
    """Instantiate the pipeline's stages (or the named subset, in pipeline order)."""
    known = stage_names()
    unknown = sorted(set(settings.stages) - set(known))
    if unknown:
        raise FsclapError(
            f"unknown stage(s) in settings.stages: {', '.join(unknown)} (stages: {', '.join(known)})"
        )
    wanted = set(only or known)
    bad = sorted(wanted - set(known))
    if bad:
        raise FsclapError(f"unknown stage(s): {', '.join(bad)} (stages: {', '.join(known)})")
    context = StageContext(
        data_root=Path(settings.data_root).expanduser(),
        device=settings.resolved_device(),
        seed=settings.seed,
        profile=settings.profile,
    )
    return [factory(settings, context) for name, factory in PIPELINE if name in wanted]


# --- summaries ------------------------------------------------------------------------------


@dataclass
class StageSummary:
    name: str
    identity: str
    counts: Counter = field(default_factory=Counter)  # run, done, failed, blocked, known_failed

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.name:<9} ran {c['run']:>4}  failed {c['failed']:>3}  already done {c['done']:>4}  "
            f"kept failed {c['known_failed']:>3}  blocked {c['blocked']:>3}   [{self.identity}]"
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
    failures: int = 0

    def count_finished(self, tables: CorpusTables, ids: list[str], stages: list[Stage]) -> None:
        """Episodes through every stage of the run (and their hours), and the current failures."""
        last = stages[-1].done_status if stages else None
        finished = [tables.episodes[i] for i in ids if tables.episodes[i].status == last]
        self.finished = len(finished)
        self.hours = sum(e.duration_s or 0.0 for e in finished) / 3600.0
        self.failures = len(tables.failures)

    @property
    def work_done(self) -> int:
        """Episodes processed (successfully or not) by any stage in this run."""
        return sum(s.counts["run"] + s.counts["failed"] for s in self.stages)

    def render(self) -> str:
        lines = [
            f"corpus build: {self.dramas} dramas ({len(self.skipped_dramas)} skipped), {self.episodes} episodes",
            *("  " + s.line() for s in self.stages),
            f"  finished all stages: {self.finished} episodes, {self.hours:.2f} h of audio",
            f"  failures: {self.failures} (see {DataRoot(self.data_root).failures_table})",
            f"  episodes: {DataRoot(self.data_root).episodes_table}",
        ]
        return "\n".join(lines)


# --- running --------------------------------------------------------------------------------


def run_build(
    settings: Settings,
    sources: str | Path | Sources,
    *,
    only: list[str] | None = None,
    retry_failed: bool = False,
    stages: list[Stage] | None = None,
) -> BuildSummary:
    """Discover the sources' episodes and run every stage over them (resumable, idempotent)."""
    if not isinstance(sources, Sources):
        sources = load_sources(sources)
    stages = stages if stages is not None else build_stages(settings, only)
    preflight(settings, stages)
    data_root = Path(settings.data_root).expanduser()
    summary = BuildSummary(data_root=data_root)
    with RunLock(data_root), CorpusTables(data_root) as tables:
        acquire = next((s for s in stages if isinstance(s, Acquire)), None)
        client = (
            acquire.client
            if acquire
            else YtdlpClient(AcquireConfig(**settings.stages.get("acquire", {})))
        )
        discovery = discover(sources, lister=client.list_entries)
        ids = record_discovery(tables, discovery)
        summary.dramas = len(discovery.dramas)
        summary.skipped_dramas = list(discovery.skipped_dramas)
        summary.episodes = len(ids)
        for stage in stages:
            summary.stages.append(run_stage(stage, ids, tables, stages, retry_failed))
            if stage.has_finish:
                stage.finish()  # corpus-wide step after the per-episode work (clip manifest, dataset)
            if isinstance(stage, Acquire):
                mark_duplicate_content(tables, ids, stage)
        summary.count_finished(tables, ids, stages)
    log.info(
        "corpus build finished: %d/%d episodes through all stages, %d failures",
        summary.finished,
        summary.episodes,
        summary.failures,
    )
    return summary


def preflight(settings: Settings, stages: list[Stage]) -> None:
    """Fail before any work when a stage's resources or the models it loads are missing or broken
    (files, checksums, and each model loading and running once)."""
    for stage in stages:
        stage.check()
    from fsclap.weights import verify_stage_models

    verify_stage_models(settings, stages)


def record_discovery(tables: CorpusTables, discovery: Discovery) -> list[str]:
    """Add new episodes, refresh the listing fields of known ones, and replace the discovery
    failures of the dramas in this sources file. Returns the episode ids to process."""
    listing_fields = (
        "drama_id",
        "source_url",
        "source_key",
        "source_kind",
        "episode_index",
        "drama_title",
        "language",
        "title",
    )
    for found in discovery.episodes:
        known = tables.episodes.get(found.episode_id)
        if known is None:
            tables.save_episode(found)
            continue
        if any(getattr(known, f) != getattr(found, f) for f in listing_fields):
            updated = known.copy()
            for name in listing_fields:
                setattr(updated, name, getattr(found, name))
            tables.save_episode(updated)
    current = {(p.stage, p.item_id) for p in discovery.problems}
    dramas = set(discovery.dramas)
    for row in tables.failures_of("discover"):
        if row.get("drama_id") in dramas and (row["stage"], row["item_id"]) not in current:
            tables.resolve_failure(row["stage"], row["item_id"])
    for problem in discovery.problems:
        log.warning("%s: %s", problem.error, problem.message)
        known = tables.failures.get((problem.stage, problem.item_id))
        if (
            known
            and (known["error"], known["message"]) == (problem.error, problem.message)
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


def run_stage(
    stage: Stage, ids: list[str], tables: CorpusTables, stages: list[Stage], retry_failed: bool
) -> StageSummary:
    order = {s.name: i for i, s in enumerate(stages)}
    summary = StageSummary(stage.name, stage.describe())
    todo: list[Episode] = []
    for episode_id in ids:
        episode = tables.episodes[episode_id]
        decision = decide(stage, episode, order, retry_failed)
        if decision == "run":
            todo.append(episode)
        else:
            summary.counts[decision] += 1
            if decision == "done":
                advance_status(tables, stage, episode, stages)
    if not todo:
        log.info("%s", summary.line())
        return summary
    stage.ensure_setup()  # a model that cannot load stops the run here, before any episode
    workers = max(int(getattr(stage.config, "workers", 1)), 1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fsclap-{stage.name}")
    try:
        futures = {pool.submit(stage.run, episode): episode for episode in todo}
        for future in progress(
            as_completed(futures), desc=stage.name, total=len(futures), unit="episode"
        ):
            episode = futures[future]
            try:
                result = future.result()
            except StageError as exc:
                record_stage_failure(
                    tables, stage, episode, exc.error_type, str(exc), exc.retryable
                )
                summary.counts["failed"] += 1
            except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error fails one episode
                log.debug(
                    "%s failed on %s:\n%s", stage.name, episode.episode_id, traceback.format_exc()
                )
                record_stage_failure(
                    tables, stage, episode, type(exc).__name__, str(exc) or repr(exc), True
                )
                summary.counts["failed"] += 1
            else:
                tables.save_episode(result)
                tables.resolve_failure(stage.name, episode.episode_id)
                summary.counts["run"] += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    log.info("%s", summary.line())
    return summary


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
