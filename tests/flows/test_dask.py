"""Scale-out on an existing Dask cluster (prefect-dask, the optional ``fsclap[dask]`` extra): the
per-episode tasks run in the cluster's worker processes, which build the stages from the run's
settings; the flow process only decides, journals and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dask_cluster(tmp_path):
    """A Dask cluster as one is run for real: a scheduler process and two worker processes (one
    thread each) started from the command line, sharing this machine's data root."""
    from fsclap.testing.media import closed_port

    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{closed_port()}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        # the repository on the path: client.run sends this module's functions by reference
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append((proc, log))

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
          "--no-dashboard")  # fmt: skip
    for i in (1, 2):
        start(f"worker{i}", "worker", address, "--nthreads", "1", "--name", f"w{i}",
              "--no-dashboard")  # fmt: skip
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc, log in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def test_build_corpus_on_a_dask_cluster(tmp_path, episode_urls, sources_file, api, dask_cluster):
    from flows import build_corpus as module

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None))
    stages = ["acquire", "extract", "separate"]
    state = module.build_corpus(
        sources=sources,
        data_root=tmp_path / "data",
        stages=stages,
        overrides=[
            "orchestration.task_runner=dask",
            f"orchestration.dask_address={dask_cluster}",
        ],
        return_state=True,
    )
    with distributed.Client(dask_cluster) as client:
        worker_calls = client.run(_stage_calls)
        assert len(client.scheduler_info()["workers"]) == 2
    n = len(episode_urls(None))
    assert state.is_completed(), state.message
    assert [s.counts["run"] for s in state.result().stages] == [n, n, n]
    episodes = pd.read_parquet(tmp_path / "data" / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "separated").all() and len(episodes) == n
    # the work happened in the two Dask worker processes, not in the flow's stage instances
    for name in stages:
        assert sum(calls.get(name, 0) for calls in worker_calls.values()) == n, worker_calls
    assert all(module._STAGES[name][1].calls == 0 for name in stages)
    by_task = api.states_by_task(api.task_runs(state.state_details.flow_run_id))
    assert all(by_task[name]["Completed"] == n for name in stages)


def _stage_calls() -> dict[str, int]:
    from flows.build_corpus import _STAGES

    return {name: stage.calls for name, (_, stage) in _STAGES.items()}


def test_dask_without_an_address_is_refused(tmp_path, episode_urls, sources_file):
    from flows.build_corpus import build_corpus
    from fsclap.errors import FsclapError

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None)[:1])
    with pytest.raises(FsclapError, match="dask_address is not set"):
        build_corpus(
            sources=sources,
            data_root=tmp_path / "data",
            overrides=["orchestration.task_runner=dask"],
        )
    assert not (tmp_path / "data").exists()
