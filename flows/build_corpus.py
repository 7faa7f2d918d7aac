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
  a stage with many episodes to run batches them instead (``orchestration.task_batch``, auto
  from 200 episodes): one task per run of consecutive episodes of a drama, named
  ``<stage>/<drama>/<first>-<last>``, each episode still succeeding or failing alone (acquire
  keeps one episode per task; streaming builds batch only the stages that load a model); each stage's corpus-wide step (``finish``:
  consistency per drama, clip manifest, dataset publish) is a task of its own;
* a failing episode fails its task (in a batch: its own outcome), not the flow: the failure is
  recorded in ``failures.parquet`` and the flow completes; network failures (acquire) are
  retried with exponential backoff first;
* each finished episode is journalled at once by the engine in the flow (the only writer of the tables), so
  a worker killed mid-run leaves a state the next run resumes from;
* task results are cached by ``(stage, episode, resume key)`` -- the resume key hashes the
  stage's version and config with the content of its input -- (a batch: by its episodes and
  their keys) and persisted under the data root: finished work the journal did not record (the
  flow died between a task's end and its journal entry, or on another machine) is taken from
  the cache instead of being redone;
* tasks of stages that load a paper model carry the tag ``gpu`` (a Prefect tag concurrency
  limit keeps them within the GPUs), every task ``stage:<name>``;
* artifacts: a Markdown summary (counts per stage, hours, failures, kept ratio, dataset), the
  failures table, and the published dataset's plots.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
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
from pipeline.runner import attempt as attempt_episode
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
    config hash + content hash of the input), so a changed input or config misses the cache.
    A batch's key covers every episode of the batch with its resume key."""

    def compute_key(
        self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs
    ) -> str | None:
        if "episodes" in inputs:  # a batch: every episode with its resume key
            episodes, keys = inputs["episodes"], inputs.get("keys") or []
            if not episodes or len(keys) != len(episodes) or not all(keys):
                return None
            pairs = [[e.episode_id, k] for e, k in zip(episodes, keys)]
            return "fsclap-batch-" + short_hash([inputs["stage_name"], pairs], 32)
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


@dataclass(frozen=True)
class EpisodeFailure:
    """How one episode of a batch failed (what a failed one-episode task's state says)."""

    error: str
    message: str
    retryable: bool


def run_stage_on_batch(
    stage_name: str, episodes: list[Episode], keys: list[str], settings: Settings
) -> list[Episode | EpisodeFailure]:
    """One stage on consecutive episodes of one drama, one after another (``keys``: their resume
    keys, the task's cache key). Each episode succeeds or fails alone: a failure is returned in
    its place, as :func:`pipeline.runner.attempt` records it, and the next episode runs."""
    ensure_library_logging()
    stage = stage_for(settings, stage_name)
    results: list[Episode | EpisodeFailure] = []
    for episode in episodes:
        outcome = attempt_episode(stage, episode)
        results.append(
            outcome.result
            if outcome.ok
            else EpisodeFailure(outcome.error, outcome.message, outcome.retryable)
        )
    return results


def batch_run_name(stage_name: str):
    """``<stage>/<drama>/<first>-<last>``: the batch's drama and its first and last episode index
    (``<stage>/<drama>/<index>`` for a batch of one, as a one-episode task is named)."""

    def name(parameters: dict[str, Any]) -> str:
        first, last = parameters["episodes"][0], parameters["episodes"][-1]
        span = (
            f"{first.episode_index}"
            if first is last
            else f"{first.episode_index}-{last.episode_index}"
        )
        return f"{stage_name}/{first.drama_id}/{span}"

    return name


def is_retryable(task, task_run, state) -> bool:
    """Retry network trouble, not bad content (a StageError says which it is)."""
    exc = state.result(raise_on_failure=False)
    return exc.retryable if isinstance(exc, StageError) else isinstance(exc, Exception)


def _stage_task_options(stage: Stage, settings: Settings, run_name) -> dict[str, Any]:
    """What every task of ``stage`` shares: its name, tags and result cache."""
    tags = ["fsclap", f"stage:{stage.name}"] + (["gpu"] if stage.models() else [])
    options: dict[str, Any] = dict(name=stage.name, task_run_name=run_name, tags=tags)
    if settings.orchestration.result_cache:
        options.update(
            cache_policy=StageKeyPolicy(),
            persist_result=True,
            result_storage=result_storage(settings.data_root),
        )
    else:
        options.update(cache_policy=NO_CACHE, persist_result=False)
    return options


def stage_task(stage: Stage, params: BuildCorpusParams, settings: Settings):
    # readable in the UI: <stage>/<drama>/<episode index> (the id is a hash)
    run_name = f"{stage.name}/{{episode.drama_id}}/{{episode.episode_index}}"
    options = _stage_task_options(stage, settings, run_name)
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


def batch_task(stage: Stage, settings: Settings):
    """The task of a batch of episodes (:func:`run_stage_on_batch`): the stage's tags and result
    cache, no retries (only network stages retry, and they are never batched)."""
    options = _stage_task_options(stage, settings, batch_run_name(stage.name))
    return task(run_stage_on_batch).with_options(**options)


#: Auto batching (``orchestration.task_batch: 0``): a stage running at least this many episodes
#: batches them, so that it makes about this many tasks (a drama boundary ends a batch early).
AUTO_BATCH_FROM = 200
AUTO_TASKS_PER_STAGE = 200


#: Streaming with ``orchestration.task_batch: 0``: a stage that loads a model (a GPU stage) is
#: handed this many episodes per task; the others one (an episode moves on as soon as it ends).
STREAM_MODEL_BATCH = 4


def batch_size(stage: Stage, episodes: int | None, setting: int) -> int:
    """Episodes per task at ``stage``: stage by stage with ``episodes`` to run, or streaming
    (``None``). Network stages keep one: their retries with backoff are per episode, and a
    download outlasts a task's overhead anyway."""
    if stage.name in NETWORK_STAGES:
        return 1
    if setting:
        return setting
    if episodes is None:
        return STREAM_MODEL_BATCH if stage.models() else 1
    if episodes < AUTO_BATCH_FROM:
        return 1
    return math.ceil(episodes / AUTO_TASKS_PER_STAGE)


def batches(episodes: list[Episode], size: int) -> list[list[Episode]]:
    """``episodes`` in batches of at most ``size``, each a run of consecutive episode indices of one
    drama (in the order given by drama, then index), so a batch's name says what it holds."""
    if size <= 1:
        return [[e] for e in episodes]
    by_drama: dict[str, list[Episode]] = {}
    for episode in episodes:
        by_drama.setdefault(episode.drama_id, []).append(episode)
    out: list[list[Episode]] = []
    for members in by_drama.values():
        current: list[Episode] = []
        for episode in sorted(members, key=_index_order):
            follows = (
                current
                and episode.episode_index is not None
                and current[-1].episode_index is not None
                and episode.episode_index == current[-1].episode_index + 1
            )
            if current and (not follows or len(current) >= size):
                out.append(current)
                current = []
            current.append(episode)
        if current:
            out.append(current)
    return out


def _index_order(episode: Episode) -> tuple[bool, int]:
    index = episode.episode_index
    return (index is None, index if index is not None else 0)


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

    Stage by stage (:meth:`run_stage`, the engine's ``run``; episodes batched per task as
    :func:`batch_size` says) or streaming (:meth:`submit`, the engine's ``run_streaming`` with
    ``orchestration.streaming``; one episode per task, as each episode moves on as soon as it
    ends, except the batches :meth:`submit_batch` takes for stages that load a model): then every
    stage keeps its task
    runner open for the whole build, and a small thread pool turns each task's final state into
    the :class:`Outcome` the engine waits for (in the flow run's context, so a re-run of a stale
    cache hit is a task of this flow run too)."""

    def __init__(self, params: BuildCorpusParams, settings: Settings, runners: TaskRunners):
        self.params = params
        self.settings = settings
        self.runners = runners
        self._open: dict[str, tuple[Any, Any, Any]] = {}  # streaming: stage -> tasks, runner
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
            with self.runners.placement(stage):
                state = _checked_cache_hit(stage, episode, state, work, runner, self.settings)
        if state.is_completed():
            return Outcome(episode, state.result(), cached=state.name == "Cached")
        return Outcome(episode, None, *_failure(state))

    def run_stage(self, stage: Stage, episodes: list[Episode]) -> Iterator[Outcome]:
        work = self._prepare(stage)
        size = batch_size(stage, len(episodes), self.settings.orchestration.task_batch)
        groups = batches(episodes, size)
        batched = batch_task(stage, self.settings)
        with self.runners.for_stage(getattr(stage.config, "workers", 1)) as runner:
            with self.runners.placement(stage):
                futures = {
                    (
                        runner.submit(work, _inputs(stage, group[0], self.settings))
                        if len(group) == 1
                        else runner.submit(batched, _batch_inputs(stage, group, self.settings))
                    ): group
                    for group in groups
                }
            for future in progress(
                as_completed(list(futures)),
                desc=stage.name,
                total=len(futures),
                unit="task" if size > 1 else "episode",
            ):
                group = futures[future]
                if len(group) == 1:
                    yield self._outcome(stage, group[0], future, work, runner)
                else:
                    yield from self._batch_outcomes(stage, group, future, batched, runner)

    def _batch_outcomes(self, stage: Stage, group: list[Episode], future, batched, runner):
        """One outcome per episode of a batch task. A cached batch counts per episode only where
        that episode succeeded and its files exist; the others run again (as uncached
        one-episode tasks would: a failure is never a cache hit)."""
        future.wait()
        state = future.state
        cached = state.is_completed() and state.name == "Cached"
        outcomes = _batch_state_outcomes(group, state, cached)
        if not cached:
            return outcomes
        stale = [o.episode for o in outcomes if not o.ok or not stage.outputs_exist(o.result)]
        if not stale:
            return outcomes
        log.info(
            "%s: %d episode(s) of a cached batch failed or lost their outputs; running again",
            stage.name,
            len(stale),
        )
        with self.runners.placement(stage):
            again = runner.submit(
                batched.with_options(refresh_cache=True),
                _batch_inputs(stage, stale, self.settings),
            )
        again.wait()
        redone = {o.episode.episode_id: o for o in _batch_state_outcomes(stale, again.state, False)}
        return [redone.get(o.episode.episode_id, o) for o in outcomes]

    def _streaming(self, stage: Stage) -> tuple[Any, Any, Any]:
        """The stage's one-episode task, batch task and task runner, open for the whole build."""
        if stage.name not in self._open:
            work = self._prepare(stage)
            runner = self._stack.enter_context(self.runners.for_stage(stage_workers(stage)))
            self._open[stage.name] = (work, batch_task(stage, self.settings), runner)
        if self._collector is None:
            self._collector = ThreadPoolExecutor(thread_name_prefix="fsclap-outcomes")
        return self._open[stage.name]

    def submit(self, stage: Stage, episode: Episode) -> Future:
        work, _, runner = self._streaming(stage)
        with self.runners.placement(stage):
            future = runner.submit(work, _inputs(stage, episode, self.settings))
        context = contextvars.copy_context()  # this flow run's, for a re-run of a stale cache hit
        return self._collector.submit(
            context.run, self._outcome, stage, episode, future, work, runner
        )

    def batch_size(self, stage: Stage) -> int:
        """Streaming: episodes the engine hands ``stage`` at once (:func:`batch_size`)."""
        return batch_size(stage, None, self.settings.orchestration.task_batch)

    def submit_batch(self, stage: Stage, episodes: list[Episode]) -> list[Future]:
        """Streaming: one task per run of consecutive episodes (of one drama, as the engine hands
        them), and a future of each episode's outcome, in order."""
        _, batched, runner = self._streaming(stage)
        futures: list[Future] = []
        for group in batches(episodes, len(episodes)):
            if len(group) == 1:
                futures.append(self.submit(stage, group[0]))
                continue
            with self.runners.placement(stage):
                future = runner.submit(batched, _batch_inputs(stage, group, self.settings))
            context = contextvars.copy_context()
            whole = self._collector.submit(
                context.run, self._batch_outcomes, stage, group, future, batched, runner
            )
            futures.extend(_each_of(whole, len(group)))
        return futures

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
        runners.check_resources(built)  # a GPU stage without a GPU worker fails now, not later
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


def _each_of(whole: Future, n: int) -> list[Future]:
    """Futures of the ``n`` items of the list that ``whole`` resolves to (its error for each)."""
    parts: list[Future] = [Future() for _ in range(n)]

    def spread(done: Future) -> None:
        if done.cancelled():  # the build stopped early
            for part in parts:
                part.cancel()
            return
        error = done.exception()
        results = [None] * n if error is not None else done.result()
        for part, result in zip(parts, results, strict=True):
            if error is not None:
                part.set_exception(error)
            else:
                part.set_result(result)

    whole.add_done_callback(spread)
    return parts


def _batch_inputs(stage: Stage, episodes: list[Episode], settings: Settings) -> dict[str, Any]:
    return {
        "stage_name": stage.name,
        "episodes": episodes,
        "keys": [stage.key(episode) for episode in episodes],
        "settings": settings,
    }


def _batch_state_outcomes(episodes: list[Episode], state, cached: bool) -> list[Outcome]:
    """The outcome of each episode of a batch task's final ``state`` (a batch that failed or
    crashed as a whole fails each of its episodes with the task's reason)."""
    if not state.is_completed():
        reason = _failure(state)
        return [Outcome(episode, None, *reason) for episode in episodes]
    return [
        Outcome(episode, None, result.error, result.message, result.retryable)
        if isinstance(result, EpisodeFailure)
        else Outcome(episode, result, cached=cached)
        for episode, result in zip(episodes, state.result(), strict=True)
    ]


def _checked_cache_hit(stage: Stage, episode: Episode, state, work, runner, settings: Settings):
    """A cached result counts only while the files it names exist; otherwise redo the work."""
    cached = state.result()
    if stage.outputs_exist(cached):
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
