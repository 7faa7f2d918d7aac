"""``build-corpus``: the corpus builder as a Prefect flow (a thin wrapper over ``pipeline/``).

The flow executes the plan of :class:`pipeline.engine.CorpusBuild`, as
:func:`pipeline.runner.run_build` does, with Prefect doing the running (:class:`PrefectExecutor`):

* parameters are flat and typed (the CLI's names; Prefect's schema and the UI form come from the
  signature and the docstring's ``Args:``); the flow validates them first as
  :class:`~flows.params.BuildCorpusParams`, so a bad value fails the run with a one-line reason
  before any work; the settings, sources, stages and every model the stages load are checked
  next, still before any work (``stage.check()`` + the model verification the runner does);
* discovery is a task; then, per stage, **one task per episode** (named ``<stage>/<drama>/<episode index>``)
  for the episodes the engine says must run, on a task runner chosen by config
  (threads by default, an existing Dask cluster for scale-out; see :mod:`flows.runtime`);
  each stage's corpus-wide step (``finish``: consistency per drama, clip manifest, dataset
  publish) is a task of its own;
* a failing episode fails its task, not the flow: the failure is recorded in
  ``failures.parquet`` and the flow completes; network failures (acquire) are retried with
  exponential backoff first;
* each finished episode is journalled at once by the engine in the flow (the only writer of the tables), so
  a worker killed mid-run leaves a state the next run resumes from;
* task results are cached by ``(stage, episode, resume key)`` -- the resume key hashes the
  stage's version and config with the content of its input -- and persisted under the data
  root: finished work the journal did not record (the flow died between a task's end and its
  journal entry, or on another machine) is taken from the cache instead of being redone;
* tasks of stages that load a paper model carry the tag ``gpu`` (a Prefect tag concurrency
  limit keeps them within the GPUs), every task ``stage:<name>``;
* artifacts: a Markdown summary (counts per stage, hours, failures, kept ratio, dataset), the
  failures table, and the published dataset's plots.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.futures import as_completed
from prefect.states import Completed, State
from prefect.tasks import exponential_backoff

from flows import artifacts
from flows.notifications import emit_build_events
from flows.params import BuildCorpusParams, StageName, check_worker_paths, validated
from flows.recovery import crash_orphaned_task_runs
from flows.runtime import TaskRunners, ensure_library_logging, result_storage, run_name
from fsclap.config import Profile, Settings
from fsclap.layout import DataRoot
from fsclap.log import get_logger, progress
from pipeline.engine import BuildSummary, CorpusBuild, Outcome, stage_workers
from pipeline.runner import build_stages, preflight
from pipeline.sources import Discovery, Sources, discover, load_sources
from pipeline.stage import Stage, StageError, short_hash
from pipeline.tables import Episode

log = get_logger("flows.build_corpus")

#: Stages whose failures can be network trouble: retried by Prefect with backoff.
NETWORK_STAGES = {"acquire"}


# --- the per-episode task ---------------------------------------------------------------------

# Stage instances by name for the tasks of this process: the flow registers its own (a thread
# runner's tasks then share its loaded models); a Dask worker builds one from the settings once.
_STAGES: dict[str, tuple[str, Stage]] = {}
_STAGES_LOCK = threading.Lock()


def settings_fingerprint(settings: Settings) -> str:
    return short_hash(settings.model_dump(mode="json"))


def register_stage(settings: Settings, stage: Stage) -> None:
    with _STAGES_LOCK:
        _STAGES[stage.name] = (settings_fingerprint(settings), stage)


def stage_for(settings: Settings, name: str) -> Stage:
    fingerprint = settings_fingerprint(settings)
    with _STAGES_LOCK:
        known = _STAGES.get(name)
        if known is None or known[0] != fingerprint:
            known = (fingerprint, build_stages(settings, [name])[0])
            _STAGES[name] = known
        return known[1]


class StageKeyPolicy(CachePolicy):
    """Cache key of a stage task: the stage, the episode and its resume key (stage version +
    config hash + content hash of the input), so a changed input or config misses the cache."""

    def compute_key(
        self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs
    ) -> str | None:
        episode = inputs.get("episode")
        key = inputs.get("key")
        if episode is None or not key:
            return None
        return "fsclap-" + short_hash([inputs["stage_name"], episode.episode_id, key], 32)


def run_stage_on_episode(
    stage_name: str, episode: Episode, key: str, settings: Settings
) -> Episode:
    """One stage on one episode (``key`` is its resume key: the task's cache key)."""
    ensure_library_logging()
    return stage_for(settings, stage_name).run(episode)


def is_retryable(task, task_run, state) -> bool:
    """Retry network trouble, not bad content (a StageError says which it is)."""
    exc = state.result(raise_on_failure=False)
    return exc.retryable if isinstance(exc, StageError) else isinstance(exc, Exception)


def stage_task(stage: Stage, params: BuildCorpusParams, settings: Settings):
    tags = ["fsclap", f"stage:{stage.name}"] + (["gpu"] if stage.models() else [])
    options: dict[str, Any] = dict(
        name=stage.name,
        # readable in the UI: <stage>/<drama>/<episode index> (the id is a hash)
        task_run_name=f"{stage.name}/{{episode.drama_id}}/{{episode.episode_index}}",
        tags=tags,
    )
    if settings.orchestration.result_cache:
        options.update(
            cache_policy=StageKeyPolicy(),
            persist_result=True,
            result_storage=result_storage(settings.data_root),
        )
    else:
        options.update(cache_policy=NO_CACHE, persist_result=False)
    if stage.name in NETWORK_STAGES and params.acquire_retries:
        options.update(
            retries=params.acquire_retries,
            retry_delay_seconds=exponential_backoff(params.acquire_retry_delay_s)(
                params.acquire_retries
            ),
            retry_jitter_factor=0.2,
            retry_condition_fn=is_retryable,
        )
    return task(run_stage_on_episode).with_options(**options)


# --- corpus-wide tasks ------------------------------------------------------------------------


@task(name="discover", task_run_name="discover", cache_policy=NO_CACHE, persist_result=False)
def discover_episodes(
    sources: Sources, lister, retries: int = 0, retry_delay_s: float = 0.0
) -> Discovery:
    """List every drama's URLs into episodes (problems are recorded, not raised). While a URL
    could not be listed for a transient reason (network), the listing is tried again after
    ``retry_delay_s`` (doubling), up to ``retries`` times; the last listing counts."""
    found = discover(sources, lister=lister)
    for attempt in range(retries):
        transient = [p for p in found.problems if p.retryable]
        if not transient:
            break
        delay = retry_delay_s * 2**attempt
        log.warning(
            "%d source URL(s) could not be listed (%s: %s); listing again in %.0f s (%d/%d)",
            len(transient),
            transient[0].error,
            transient[0].message,
            delay,
            attempt + 1,
            retries,
        )
        time.sleep(delay)
        found = discover(sources, lister=lister)
    return found


@task(
    name="finish", task_run_name="{stage.name}-finish", cache_policy=NO_CACHE, persist_result=False
)
def finish_stage(stage: Stage) -> Any:
    """A stage's corpus-wide step: consistency per drama, the clip manifest, the dataset."""
    return stage.finish()


# --- the flow ---------------------------------------------------------------------------------


class PrefectExecutor:
    """Runs each stage's episodes as Prefect tasks (one per episode, named ``<stage>/<drama>/<episode index>``)
    on the task runner :class:`~flows.runtime.TaskRunners` hands out; reports each as it ends.

    Stage by stage (:meth:`run_stage`, the engine's ``run``) or streaming (:meth:`submit`, the
    engine's ``run_streaming`` with ``orchestration.streaming``): then every stage keeps its task
    runner open for the whole build, and a small thread pool turns each task's final state into
    the :class:`Outcome` the engine waits for (in the flow run's context, so a re-run of a stale
    cache hit is a task of this flow run too)."""

    def __init__(self, params: BuildCorpusParams, settings: Settings, runners: TaskRunners):
        self.params = params
        self.settings = settings
        self.runners = runners
        self._open: dict[str, tuple[Any, Any]] = {}  # streaming: stage -> (task, runner)
        self._stack = ExitStack()
        self._collector: ThreadPoolExecutor | None = None

    def discover(self, sources: Sources, lister) -> Discovery:
        return discover_episodes(
            sources, lister, self.params.acquire_retries, self.params.acquire_retry_delay_s
        )

    def _prepare(self, stage: Stage):
        register_stage(self.settings, stage)
        if self.runners.in_process:
            stage.ensure_setup()  # a model that cannot load stops the run here, not as one failure per episode
        return stage_task(stage, self.params, self.settings)

    def _outcome(self, stage: Stage, episode: Episode, future, work, runner) -> Outcome:
        future.wait()  # takes the final state from the runner (the API's copy may lag behind)
        state = future.state
        if state.is_completed() and state.name == "Cached":
            state = _checked_cache_hit(stage, episode, state, work, runner, self.settings)
        if state.is_completed():
            return Outcome(episode, state.result(), cached=state.name == "Cached")
        return Outcome(episode, None, *_failure(state))

    def run_stage(self, stage: Stage, episodes: list[Episode]) -> Iterator[Outcome]:
        work = self._prepare(stage)
        with self.runners.for_stage(getattr(stage.config, "workers", 1)) as runner:
            futures = {
                runner.submit(work, _inputs(stage, episode, self.settings)): episode
                for episode in episodes
            }
            for future in progress(
                as_completed(list(futures)), desc=stage.name, total=len(futures), unit="episode"
            ):
                yield self._outcome(stage, futures[future], future, work, runner)

    def submit(self, stage: Stage, episode: Episode) -> Future:
        if stage.name not in self._open:
            work = self._prepare(stage)
            runner = self._stack.enter_context(self.runners.for_stage(stage_workers(stage)))
            self._open[stage.name] = (work, runner)
        if self._collector is None:
            self._collector = ThreadPoolExecutor(thread_name_prefix="fsclap-outcomes")
        work, runner = self._open[stage.name]
        future = runner.submit(work, _inputs(stage, episode, self.settings))
        context = contextvars.copy_context()  # this flow run's, for a re-run of a stale cache hit
        return self._collector.submit(
            context.run, self._outcome, stage, episode, future, work, runner
        )

    def finish(self, stage: Stage) -> Any:
        return finish_stage(stage)

    def close(self) -> None:
        collector, self._collector = self._collector, None
        if collector is not None:
            collector.shutdown(wait=True, cancel_futures=True)
        self._open.clear()
        self._stack.close()


@flow(
    name="build-corpus",
    flow_run_name=run_name("build-corpus"),
    description="Short-drama sources -> clips with style captions -> a published dataset "
    "version (incremental: only new or changed episodes are processed).",
    persist_result=False,
)
def build_corpus(
    *,
    sources: Path | None = None,
    stages: list[StageName] | None = None,
    retry_failed: bool = False,
    acquire_retries: int = 2,
    acquire_retry_delay_s: float = 30.0,
    data_root: Path | None = None,
    profile: Profile | None = None,
    config_file: Path | None = None,
    overrides: tuple[str, ...] = (),
) -> BuildSummary | State:
    """Build or update the corpus of the data root from its sources (incremental).

    Args:
        sources: Sources YAML/CSV on the worker (default: DATA_ROOT/sources.yaml).
        stages: Run only these stages (default: all).
        retry_failed: Retry episodes that failed for a content reason.
        acquire_retries: Retries (0-10) of a download, or of listing a source URL, that failed
            for a network reason, on top of the downloader's own quick retries.
        acquire_retry_delay_s: First retry delay in seconds (0-3600); doubles each retry.
        data_root: Data root on the worker (default: the worker's FSCLAP_DATA_ROOT / settings).
        profile: offline: models shipped in wheels; paper: the paper's models from
            FSCLAP_MODELS (default: settings).
        config_file: fsclap settings YAML on the worker (default: FSCLAP_CONFIG).
        overrides: Settings overrides key=value, as `fsclap --set` (e.g. device=cuda,
            stages.separate.method=repet).
    """
    params = validated(BuildCorpusParams, locals())  # first: only the arguments are local yet
    ensure_library_logging()
    settings = params.settings()
    check_worker_paths(params, settings)
    root = Path(settings.data_root).expanduser()
    loaded = load_sources(params.sources_path(root))
    built = build_stages(settings, params.stages)
    runners = TaskRunners(settings)
    preflight(settings, built)
    close_orphaned_task_runs()
    build = CorpusBuild(settings, loaded, built, retry_failed=params.retry_failed)
    start = time.perf_counter()
    with runners:
        executor = PrefectExecutor(params, settings, runners)
        if settings.orchestration.streaming:
            summary = build.run_streaming(executor, settings.orchestration.stream_queue)
        else:
            summary = build.run(executor)
    report_build(summary, params, settings, time.perf_counter() - start)
    emit_build_events(summary)  # notifications (flows/notifications.py)
    if summary.failures:  # Completed, and the run says so (the CLI exits 3 on the same count)
        return Completed(message=summary.outcome(), data=summary)
    return summary


def close_orphaned_task_runs() -> None:
    """Before a build: task runs an earlier crashed run left Running are marked Crashed (the
    recovery automation does it too, when it is installed: flows/recovery.py)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        closed = crash_orphaned_task_runs(client)
    if closed:
        log.info("marked %d task run(s) of earlier crashed runs Crashed", closed)


def _inputs(stage: Stage, episode: Episode, settings: Settings) -> dict[str, Any]:
    return {
        "stage_name": stage.name,
        "episode": episode,
        "key": stage.key(episode),
        "settings": settings,
    }


def _checked_cache_hit(stage: Stage, episode: Episode, state, work, runner, settings: Settings):
    """A cached result counts only while the files it names exist; otherwise redo the work."""
    cached = state.result()
    if all(path.exists() for path in stage.outputs(cached)):
        return state
    log.info(
        "%s/%s: cached result's outputs are gone; running again", stage.name, episode.episode_id
    )
    again = runner.submit(work.with_options(refresh_cache=True), _inputs(stage, episode, settings))
    again.wait()
    return again.state


def _failure(state) -> tuple[str, str, bool]:
    """(error type, message, retryable) of a failed or crashed task, as the runner records them."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, StageError):
        return exc.error_type, str(exc), exc.retryable
    if isinstance(exc, BaseException):
        log.debug("task failed:\n%s", "".join(traceback.format_exception(exc)))
        return type(exc).__name__, str(exc) or repr(exc), True
    return state.name, state.message or f"task ended in state {state.name}", True


# --- the run's artifacts -----------------------------------------------------------------------


def report_build(
    summary: BuildSummary, params: BuildCorpusParams, settings: Settings, seconds: float
) -> None:
    import pandas as pd

    failures = [f.to_row() for f in summary.failure_rows]
    published = summary.finished_steps.get("publish")
    data_root = summary.data_root
    layout = DataRoot(data_root)
    segments_path = layout.segments_table
    clips_path = layout.clips_table
    segments = pd.read_parquet(segments_path, columns=None) if segments_path.exists() else None
    lines = [
        "# build-corpus",
        "",
        f"Data root `{data_root}` · profile `{settings.profile}` · sources `{params.sources_path(data_root)}` · "
        f"{seconds:.0f} s",
        "",
        f"- dramas: **{summary.dramas}** ({len(summary.skipped_dramas)} skipped"
        + (f": {', '.join(summary.skipped_dramas)}" if summary.skipped_dramas else "")
        + ")",
        f"- episodes: **{summary.episodes}**, through all stages: **{summary.finished}** "
        f"({summary.hours:.2f} h of audio)",
        f"- failures: **{summary.failures}** (`{layout.failures_table}`)",
    ]
    if segments is not None and len(segments):
        kept = segments["kept"].fillna(False).astype(bool)
        kept_h = (
            float(segments.loc[kept, "duration_s"].sum()) / 3600
            if "duration_s" in segments
            else float("nan")
        )
        lines.append(
            f"- segments: **{len(segments)}**, kept by the consistency filter: **{int(kept.sum())}** "
            f"(kept ratio **{kept.mean():.1%}**, {kept_h:.2f} h)"
        )
    if clips_path.exists():
        lines.append(
            f"- clips with captions: **{len(pd.read_parquet(clips_path, columns=['clip_id']))}** (`{clips_path}`)"
        )
    if published is not None:
        counts = ", ".join(f"{k} {v}" for k, v in published.counts.items())
        lines.append(
            f"- dataset **{published.version}** ({counts}; {published.split_rule})"
            f"{' already published' if published.reused else ''}: `{published.path}`"
        )
    rows = [
        {
            "stage": s.name,
            "ran": s.counts["run"],
            "failed": s.counts["failed"],
            "already done": s.counts["done"],
            "of which cached": s.cached,
            "kept failed": s.counts["known_failed"],
            "blocked": s.counts["blocked"],
            "seconds": round(s.seconds, 1),
            "audio h per h": round(s.audio_hours_per_hour, 1) if s.counts["run"] else "",
            "identity": s.identity,
        }
        for s in summary.stages
    ]
    lines += ["", "## Stages", "", artifacts.markdown_table(rows)]
    by_error = Counter((f["stage"], f["error"]) for f in failures)
    if by_error:
        lines += [
            "",
            "## Failures by reason",
            "",
            artifacts.markdown_table(
                [{"stage": s, "error": e, "items": n} for (s, e), n in by_error.most_common()]
            ),
        ]
    plots = sorted((published.path / "plots").glob("*.png")) if published is not None else []
    if plots:
        lines += [
            "",
            "## Plots",
            "",
            *(
                f"- `{p}` (image artifact `{artifacts.artifact_key('dataset', p.stem)}`)"
                for p in plots
            ),
        ]
    artifacts.markdown(
        "build-corpus-summary",
        "\n".join(lines),
        "Corpus build: counts, hours, failures, kept ratio",
    )
    artifacts.table(
        "build-corpus-failures",
        [
            {
                k: f.get(k)
                for k in (
                    "stage",
                    "item_id",
                    "drama_id",
                    "error",
                    "message",
                    "attempts",
                    "retryable",
                )
            }
            for f in failures[:500]
        ]
        or [{"stage": None, "item_id": None, "error": None, "message": "no failures"}],
        f"Current failures ({len(failures)}; first 500)",
    )
    artifacts.images(
        "dataset", plots, f"dataset {published.version}" if published is not None else "dataset"
    )
