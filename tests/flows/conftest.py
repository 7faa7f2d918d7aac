"""Fixtures of the flow tests: one Prefect test harness (a real API server over a temporary
SQLite database) for the session, one generated short drama served on loopback HTTP, and one
build of it that several tests look at."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from flows.runtime import prepare_local_prefect

prepare_local_prefect()  # before prefect is imported: no analytics, quiet loggers


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def drama(tmp_path_factory) -> Path:
    """One drama, three ~20-s episodes (MP4 with speech over music) and their ground truth."""
    from pipeline.synth import generate_dramas

    out = tmp_path_factory.mktemp("drama")
    generate_dramas(out, dramas=1, episodes=3, seed=3, duration_s=20.0, workers=2)
    return out


@pytest.fixture(scope="session")
def served(drama):
    """The drama's folder on a loopback HTTP server (stable URLs, so episode ids stay the same
    between builds)."""
    from pipeline.synth import serve_directory

    with serve_directory(drama) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def episode_urls(drama) -> Callable[[str | None], list[str]]:
    """The drama's episodes as served URLs (or as local files with ``None``)."""
    listed = yaml.safe_load((drama / "sources.yaml").read_text())["dramas"][0]["urls"]

    def urls(base_url: str | None) -> list[str]:
        return [f"{base_url}/{u}" if base_url else str(drama / u) for u in listed]

    return urls


def write_sources(path: Path, urls: list[str]) -> Path:
    doc = {
        "min_episodes": 1,
        "dramas": [{"id": "drama01", "title": "A generated drama", "language": "en", "urls": urls}],
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sources_file() -> Callable[[Path, list[str]], Path]:
    return write_sources


@pytest.fixture(scope="session")
def first_build(tmp_path_factory, drama, served, episode_urls):
    """build-corpus over HTTP on two good episodes, an unreachable host (network: retried, then
    recorded) and a text file named .mp4 (bad content: recorded at once)."""
    from flows.build_corpus import build_corpus
    from fsclap.testing.media import closed_port

    tmp = tmp_path_factory.mktemp("build")
    (drama / "notes.mp4").write_text("a text file renamed to .mp4\n")
    good = episode_urls(served)[:2]
    unreachable = f"http://127.0.0.1:{closed_port()}/drama01_ep009.mp4"
    sources = write_sources(tmp / "sources.yaml", [*good, f"{served}/notes.mp4", unreachable])
    params = {
        "sources": str(sources),
        "data_root": str(tmp / "data"),
        "acquire_retries": 1,
        "acquire_retry_delay_s": 0.1,
        "overrides": ["stages.acquire.retries=0"],
    }
    start = time.perf_counter()
    state = build_corpus(**params, return_state=True)
    return {
        "state": state,
        "flow_run_id": state.state_details.flow_run_id,
        "data_root": tmp / "data",
        "seconds": time.perf_counter() - start,
    }


# --- reading runs back from the API ---------------------------------------------------------------


def task_runs(flow_run_id, settle_s: float = 20.0) -> list:
    """The flow run's task runs once the API has recorded a final state for each (task states
    reach the API as events, a moment after the run itself returns)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + settle_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if (
                all(r.state is not None and r.state.is_final() for r in runs)
                or time.monotonic() > deadline
            ):
                return runs
            time.sleep(0.5)


def states_by_task(runs) -> dict:
    """Final state names per task: ``<stage>/<episode>`` runs by stage, ``<stage>-finish`` as is,
    other tasks by name (Prefect names their runs ``<task>-<suffix>``)."""
    from collections import Counter

    out: dict = {}
    for run in runs:
        if "/" in run.name:
            key = run.name.split("/")[0]
        else:
            key = run.name if run.name.endswith("-finish") else run.name.rsplit("-", 1)[0]
        out.setdefault(key, Counter())[run.state.name] += 1
    return out


def artifacts_of(flow_run_id) -> dict:
    """The flow run's artifacts by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


@pytest.fixture(scope="session")
def api():
    from types import SimpleNamespace

    return SimpleNamespace(
        task_runs=task_runs, states_by_task=states_by_task, artifacts=artifacts_of
    )
