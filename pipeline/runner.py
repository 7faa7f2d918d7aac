"""The corpus builder's stage list and its in-process executor (``fsclap corpus build``).

Stages run in the order of :data:`PIPELINE` (one entry per stage: its name and a factory that
builds it from the settings); a later stage is added by appending its entry. What runs when is
planned by :class:`pipeline.engine.CorpusBuild`; :class:`ThreadExecutor` runs each stage's
episodes on a thread pool of ``stages.<name>.workers`` in this process, stage by stage or, with
``orchestration.streaming``, all stages at once, each episode moving on as soon as it finished a
stage (:meth:`pipeline.engine.CorpusBuild.run_streaming`; the Prefect flow,
:mod:`flows.build_corpus`, is the other executor of the same plan). A stage's resources and the
models it loads are checked before any stage runs (:func:`preflight`) and loaded once before its
first episode.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from fsclap.config import Settings
from fsclap.errors import FsclapError
from fsclap.log import get_logger, progress
from fsclap.model_store.verify import verify_stage_models
from pipeline.acquire import Acquire
from pipeline.caption import caption_stage
from pipeline.consistency import Consistency
from pipeline.diarize.stage import Diarize
from pipeline.engine import BuildSummary, CorpusBuild, Outcome, stage_workers
from pipeline.extract import Extract
from pipeline.publish import publish_stage
from pipeline.separate import INPUT_FORMATS, Separate
from pipeline.sources import Discovery, Sources, discover, load_sources
from pipeline.stage import Stage, StageContext, StageError
from pipeline.tables import Episode

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
    config = dict(settings.stages.get("diarize", {}))
    config.setdefault("backend", "funasr" if settings.profile == "paper" else "offline")
    return Diarize(config, context=context, settings=settings)


def _consistency(settings: Settings, context: StageContext) -> Stage:
    return Consistency(settings.stages.get("consistency", {}), context=context)


def _caption(settings: Settings, context: StageContext) -> Stage:
    return caption_stage(settings, context)


def _publish(settings: Settings, context: StageContext) -> Stage:
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
    for where, named in (
        ("settings.stages", settings.stages),
        ("orchestration.stage_resources", settings.orchestration.stage_resources),
    ):
        unknown = sorted(set(named) - set(known))
        if unknown:
            raise FsclapError(
                f"unknown stage(s) in {where}: {', '.join(unknown)} (stages: {', '.join(known)})"
            )
    wanted = set(only or known)
    bad = sorted(wanted - set(known))
    if bad:
        raise FsclapError(f"unknown stage(s): {', '.join(bad)} (stages: {', '.join(known)})")
    context = StageContext(
        data_root=Path(settings.data_root).expanduser().absolute(),  # one spelling for every tool
        device=settings.resolved_device(),
        seed=settings.seed,
        profile=settings.profile,
    )
    return [factory(settings, context) for name, factory in PIPELINE if name in wanted]


# --- running --------------------------------------------------------------------------------


class ThreadExecutor:
    """Runs each stage's episodes on a thread pool of ``stages.<name>.workers`` in this process
    (the stages share their loaded models across threads): a stage at a time
    (:meth:`run_stage`), or streaming (:meth:`submit`: one pool per stage, all stages at once)."""

    def __init__(self) -> None:
        self.pools: dict[str, ThreadPoolExecutor] = {}

    def discover(self, sources: Sources, lister) -> Discovery:
        return discover(sources, lister=lister)

    def run_stage(self, stage: Stage, episodes: list[Episode]) -> Iterator[Outcome]:
        stage.ensure_setup()  # a model that cannot load stops the run here, before any episode
        workers = max(int(getattr(stage.config, "workers", 1)), 1)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fsclap-{stage.name}")
        try:
            futures = {pool.submit(attempt, stage, episode) for episode in episodes}
            for future in progress(
                as_completed(futures), desc=stage.name, total=len(futures), unit="episode"
            ):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, stage: Stage, episode: Episode) -> Future[Outcome]:
        pool = self.pools.get(stage.name)
        if pool is None:
            pool = self.pools[stage.name] = ThreadPoolExecutor(
                max_workers=stage_workers(stage), thread_name_prefix=f"fsclap-{stage.name}"
            )
        return pool.submit(setup_and_attempt, stage, episode)

    def finish(self, stage: Stage) -> Any:
        return stage.finish()

    def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def attempt(stage: Stage, episode: Episode) -> Outcome:
    """Run ``stage`` on ``episode``: the updated episode, or why it failed (never raises for an
    episode's own failure)."""
    try:
        return Outcome(episode, stage.run(episode))
    except StageError as exc:
        return Outcome(episode, None, exc.error_type, str(exc), exc.retryable)
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error fails one episode
        log.debug("%s failed on %s:\n%s", stage.name, episode.episode_id, traceback.format_exc())
        return Outcome(episode, None, type(exc).__name__, str(exc) or repr(exc), True)


def setup_and_attempt(stage: Stage, episode: Episode) -> Outcome:
    stage.ensure_setup()  # outside attempt(): a model that cannot load stops the build
    return attempt(stage, episode)


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
    build = CorpusBuild(settings, sources, stages, retry_failed=retry_failed)
    if settings.orchestration.streaming:
        return build.run_streaming(ThreadExecutor(), queue=settings.orchestration.stream_queue)
    return build.run(ThreadExecutor())


def preflight(settings: Settings, stages: list[Stage]) -> None:
    """Fail before any work when a stage's resources or the models it loads are missing or broken
    (files, checksums, and each model loading and running once)."""
    for stage in stages:
        stage.check()
    verify_stage_models(settings, stages)  # the stages' modules declared their models' loaders
