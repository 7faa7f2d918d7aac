"""Where and how the flows run: Prefect defaults for in-process runs, task runners, result storage.

In-process runs (``fsclap corpus build``, the demo, tests) use Prefect's ephemeral mode when no
``PREFECT_API_URL`` is configured: Prefect starts a throw-away API server on a loopback port over
the SQLite database in ``PREFECT_HOME`` (``~/.prefect``), so ``prefect server start`` later shows
those runs and their artifacts. Deployments run the same flows on workers (``prefect.yaml``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from fsclap.errors import FsclapError
from fsclap.layout import DataRoot

if TYPE_CHECKING:
    from fsclap.config import Settings
    from pipeline.stage import Stage

#: Set (unless already set) before Prefect is imported by an in-process run.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",  # no API URL configured: start a local ephemeral server
    "PREFECT_LOGGING_EXTRA_LOGGERS": "fsclap",  # the library's own log lines reach the run's logs in the UI
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # the ephemeral server can take longer than Prefect's 20 s to start on a loaded small machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def apply_prefect_defaults() -> None:
    """:data:`PREFECT_DEFAULTS` into the environment where it does not set them (``flows`` does this
    on import, before any flow module imports Prefect)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def prepare_local_prefect(verbose: bool = False) -> None:
    """Prefect settings for running a flow inside a command: quiet unless ``verbose`` (the command
    prints its own summary and the library logs failures itself; Prefect would add a traceback
    per failed episode). Prefect may be imported already: its loggers are then set directly."""
    apply_prefect_defaults()
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    if "prefect" in sys.modules and not verbose:
        # imported before (a test session, the demo): its loggers are configured already
        logging.getLogger("prefect").setLevel(logging.CRITICAL)


def run_name(flow: str):
    """A flow's run names: ``<flow> <data root folder> <UTC date and time>`` (Prefect's default is a
    random pair of words), e.g. ``build-corpus data 2026-12-07 03:00``."""

    def name() -> str:
        from prefect.runtime import flow_run  # imports Prefect: only inside a run

        data_root = flow_run.parameters.get("data_root") or os.environ.get(
            "FSCLAP_DATA_ROOT", "data"
        )
        return f"{flow} {Path(str(data_root)).name or data_root} {datetime.now(timezone.utc):%Y-%m-%d %H:%M}"

    return name


def ensure_library_logging() -> None:
    """In a worker's flow-run process nobody configured the ``fsclap`` logger: let its INFO lines
    through to Prefect's handlers (console + API) instead of the root logger's WARNING."""
    logger = logging.getLogger("fsclap")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def result_storage(data_root: Path) -> Path:
    """Per-episode task results live beside the data they describe, on the volume every worker
    mounts, so any worker (or a Dask process) finds what another one finished."""
    return DataRoot(Path(data_root).expanduser().absolute()).prefect_results


# --- task runners ---------------------------------------------------------------------------


class TaskRunners:
    """Hands out the task runner for each stage: by default a thread pool as wide as the stage's
    ``workers`` (the plain runner's semantics, so a model that is not thread-safe stays on one
    thread), or one client of an existing Dask cluster (``orchestration.task_runner: dask``), where
    :meth:`placement` keeps a stage's tasks on the workers that declare its resources."""

    def __init__(self, settings: Settings):
        self.kind = settings.orchestration.task_runner
        self.address = settings.orchestration.dask_address
        self.stage_resources = settings.orchestration.stage_resources
        self._stack = ExitStack()
        self._dask = None
        self._declared: set[str] = set()  # stages whose resources some worker was seen to declare
        if self.kind == "dask":
            if not self.address:
                raise FsclapError(
                    "orchestration.task_runner is dask but orchestration.dask_address is not set "
                    "(e.g. --set orchestration.dask_address=tcp://scheduler:8786)"
                )
            try:
                from prefect_dask import DaskTaskRunner  # noqa: F401
            except ImportError:
                raise FsclapError(
                    "orchestration.task_runner=dask needs the dask extra: pip install 'fsclap[dask]'"
                ) from None

    @property
    def in_process(self) -> bool:
        """Whether tasks run in this process (they share the flow's stage instances and models)."""
        return self.kind == "threads"

    def __enter__(self) -> TaskRunners:
        if self.kind == "dask":
            from prefect_dask import DaskTaskRunner

            self._dask = self._stack.enter_context(DaskTaskRunner(address=self.address))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @contextmanager
    def for_stage(self, workers: int) -> Iterator:
        if self._dask is not None:
            yield self._dask
            return
        from prefect.task_runners import ThreadPoolTaskRunner

        with ThreadPoolTaskRunner(max_workers=max(int(workers), 1)) as runner:
            yield runner

    def resources(self, stage: Stage) -> dict[str, float]:
        """Dask worker resources each task of ``stage`` holds while it runs: the stage's entry in
        ``orchestration.stage_resources``, else one ``GPU`` for a stage that loads a model on a
        CUDA device (one model per GPU at a time), else none."""
        if stage.name in self.stage_resources:
            return dict(self.stage_resources[stage.name])
        if stage.models() and stage.context.device.startswith("cuda"):
            return {"GPU": 1}
        return {}

    @contextmanager
    def placement(self, stage: Stage) -> Iterator[None]:
        """Tasks submitted inside go only to Dask workers that declare ``stage``'s resources
        (``dask worker --resources GPU=1``); threads have nothing to place."""
        resources = self.resources(stage) if self._dask is not None else {}
        if not resources:
            yield
            return
        import dask

        self._check_declared(stage.name, resources)
        with dask.annotate(resources=resources):
            yield

    def check_resources(self, stages: list[Stage]) -> None:
        """Before any work: every stage's resources are declared by some worker of the cluster."""
        if self._dask is None:
            return
        for stage in stages:
            resources = self.resources(stage)
            if resources:
                self._check_declared(stage.name, resources)

    def _check_declared(self, stage_name: str, resources: dict[str, float]) -> None:
        """Dask keeps a task that no worker can take waiting forever: refuse it at once."""
        if stage_name in self._declared:
            return
        workers = self._dask.client.scheduler_info()["workers"].values()

        def fits(worker: dict) -> bool:  # a task holds all its resources on one worker
            declared = worker.get("resources") or {}
            return all(declared.get(name, 0) >= amount for name, amount in resources.items())

        if not any(fits(worker) for worker in workers):
            wanted = ",".join(f"{name}={amount:g}" for name, amount in resources.items())
            raise FsclapError(
                f"stage {stage_name} needs Dask worker resource {wanted}, but no worker of the "
                f"cluster at {self.address} declares it (start one with dask worker "
                f"{self.address} --resources {wanted}, or set "
                f"orchestration.stage_resources.{stage_name})"
            )
        self._declared.add(stage_name)
