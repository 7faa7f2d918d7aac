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
GPU_WORKER = "w-gpu"  # the worker started with --resources GPU=1


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A Dask cluster as one is run for real: a scheduler process and two worker processes (one
    thread each) started from the command line, sharing this machine's data root; the first
    declares a GPU (``--resources GPU=1``), the other nothing. The tests of this module share it
    (each starts with :func:`forget_stages`)."""
    from fsclap.testing.media import closed_port

    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{closed_port()}"
    logs = tmp_path_factory.mktemp("dask-logs")
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
    for name, extra in ((GPU_WORKER, ["--resources", "GPU=1"]), ("w-cpu", [])):
        start(name, "worker", address, "--nthreads", "1", "--name", name, "--no-dashboard",
              *extra)  # fmt: skip
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

    forget_stages(dask_cluster)
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


def _forget_stages() -> None:
    from flows.build_corpus import _STAGES

    _STAGES.clear()


def forget_stages(address: str) -> None:
    """Drop the stage instances (and their call counts) an earlier test left in the workers."""
    with distributed.Client(address) as client:
        client.run(_forget_stages)


def stage_calls_by_worker(address: str) -> dict[str, dict[str, int]]:
    """Episodes each stage processed, by the name of the Dask worker that processed them."""
    with distributed.Client(address) as client:
        calls = client.run(_stage_calls)
        names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
    return {names[addr]: counts for addr, counts in calls.items()}


def test_a_stage_that_needs_a_gpu_runs_only_on_the_worker_that_declares_one(
    tmp_path, episode_urls, sources_file, dask_cluster
):
    from flows.build_corpus import build_corpus

    forget_stages(dask_cluster)
    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None))
    state = build_corpus(
        sources=sources,
        data_root=tmp_path / "data",
        stages=["acquire", "extract", "separate"],
        overrides=[
            "orchestration.task_runner=dask",
            f"orchestration.dask_address={dask_cluster}",
            "orchestration.stage_resources.separate.GPU=1",
        ],
        return_state=True,
    )
    assert state.is_completed(), state.message
    n = len(episode_urls(None))
    calls = stage_calls_by_worker(dask_cluster)
    assert calls[GPU_WORKER].get("separate") == n, calls
    assert all(c.get("separate", 0) == 0 for w, c in calls.items() if w != GPU_WORKER), calls
    for name in ("acquire", "extract"):  # not placed: either worker
        assert sum(c.get(name, 0) for c in calls.values()) == n, calls


def test_a_resource_no_worker_declares_is_refused_at_once(
    tmp_path, episode_urls, sources_file, dask_cluster
):
    from flows.build_corpus import build_corpus
    from fsclap.errors import FsclapError

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None)[:1])
    overrides = ["orchestration.task_runner=dask", f"orchestration.dask_address={dask_cluster}"]
    with pytest.raises(
        FsclapError, match="stage acquire needs Dask worker resource TPU=1, but no "
    ):
        build_corpus(
            sources=sources,
            data_root=tmp_path / "data",
            stages=["acquire"],
            overrides=[*overrides, "orchestration.stage_resources.acquire.TPU=1"],
        )
    # more of a resource than any one worker has is as unplaceable as a missing one
    with pytest.raises(FsclapError, match="stage acquire needs Dask worker resource GPU=2"):
        build_corpus(
            sources=sources,
            data_root=tmp_path / "data",
            stages=["acquire"],
            overrides=[*overrides, "orchestration.stage_resources.acquire.GPU=2"],
        )
    # a later stage's resource is checked before the first stage runs: nothing was downloaded
    with pytest.raises(FsclapError, match="stage separate needs Dask worker resource TPU=1"):
        build_corpus(
            sources=sources,
            data_root=tmp_path / "later",
            stages=["acquire", "extract", "separate"],
            overrides=[*overrides, "orchestration.stage_resources.separate.TPU=1"],
        )
    assert not (tmp_path / "later" / "media").exists() or not any(
        (tmp_path / "later" / "media").iterdir()
    )


class _ModelStage:
    """What :meth:`TaskRunners.resources` looks at: the stage's name, models and device."""

    def __init__(self, name: str, models: list[str], device: str):
        from types import SimpleNamespace

        self.name = name
        self._models = models
        self.context = SimpleNamespace(device=device)

    def models(self) -> list[str]:
        return self._models


def test_stage_resources_default_to_a_gpu_for_a_model_on_cuda_and_follow_the_setting():
    from flows.runtime import TaskRunners
    from fsclap.config import load_settings

    dask = ["orchestration.task_runner=dask", "orchestration.dask_address=tcp://nowhere:8786"]
    runners = TaskRunners(load_settings(overrides=dask))
    assert runners.resources(_ModelStage("separate", ["demucs"], "cuda")) == {"GPU": 1}
    assert runners.resources(_ModelStage("separate", ["demucs"], "cuda:1")) == {"GPU": 1}
    assert runners.resources(_ModelStage("separate", ["demucs"], "cpu")) == {}
    assert runners.resources(_ModelStage("extract", [], "cuda")) == {}
    runners = TaskRunners(
        load_settings(
            overrides=[
                *dask,
                "orchestration.stage_resources.separate={}",
                "orchestration.stage_resources.extract={GPU: 0.5, RAM: 4e9}",
            ]
        )
    )
    assert runners.resources(_ModelStage("separate", ["demucs"], "cuda")) == {}
    assert runners.resources(_ModelStage("extract", [], "cpu")) == {"GPU": 0.5, "RAM": 4e9}


def test_resources_split_over_two_workers_are_refused():
    from types import SimpleNamespace

    from flows.runtime import TaskRunners
    from fsclap.config import load_settings
    from fsclap.errors import FsclapError

    settings = load_settings(
        overrides=[
            "orchestration.task_runner=dask",
            "orchestration.dask_address=tcp://nowhere:8786",
            "orchestration.stage_resources.separate={GPU: 1, RAM: 2}",
        ]
    )
    runners = TaskRunners(settings)
    workers = {"a": {"resources": {"GPU": 1}}, "b": {"resources": {"RAM": 8}}}
    runners._dask = SimpleNamespace(  # a client of a cluster with these workers
        client=SimpleNamespace(scheduler_info=lambda: {"workers": workers})
    )
    stage = _ModelStage("separate", [], "cpu")
    with pytest.raises(FsclapError, match="stage separate needs Dask worker resource GPU=1,RAM=2"):
        with runners.placement(stage):
            pass
    workers["b"]["resources"]["GPU"] = 1
    with runners.placement(stage):
        import dask

        assert dask.get_annotations() == {"resources": {"GPU": 1, "RAM": 2}}


def test_placement_on_threads_places_nothing():
    import dask

    from flows.runtime import TaskRunners
    from fsclap.config import load_settings

    settings = load_settings(overrides=["orchestration.stage_resources.separate.GPU=1"])
    with TaskRunners(settings) as runners, runners.placement(_ModelStage("separate", [], "cpu")):
        assert dask.get_annotations() == {}


def test_stage_resources_of_an_unknown_stage_are_refused():
    from fsclap.config import load_settings
    from fsclap.errors import FsclapError
    from pipeline.runner import build_stages

    settings = load_settings(overrides=["orchestration.stage_resources.seperate.GPU=1"])
    with pytest.raises(FsclapError, match="unknown stage.*orchestration.stage_resources: seperate"):
        build_stages(settings)


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
