"""Scale-out on an existing Dask cluster (prefect-dask, the optional ``fsclap[dask]`` extra): the
per-episode tasks run in the cluster's worker processes, which build the stages from the run's
settings; the flow process only decides, journals and reports."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")


def test_build_corpus_on_a_dask_cluster(tmp_path, episode_urls, sources_file, api):
    from flows import build_corpus as module

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None)[:2])
    stages = ["acquire", "extract", "separate"]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        state = module.build_corpus(
            sources=sources,
            data_root=tmp_path / "data",
            stages=stages,
            overrides=[
                "orchestration.task_runner=dask",
                f"orchestration.dask_address={cluster.scheduler_address}",
            ],
            return_state=True,
        )
        with distributed.Client(cluster.scheduler_address) as client:
            worker_calls = client.run(_stage_calls)
    assert state.is_completed(), state.message
    assert [s.counts["run"] for s in state.result().stages] == [2, 2, 2]
    episodes = pd.read_parquet(tmp_path / "data" / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "separated").all() and len(episodes) == 2
    # the work happened in the Dask worker process, not in the flow's stage instances
    assert list(worker_calls.values()) == [{"acquire": 2, "extract": 2, "separate": 2}]
    assert all(module._STAGES[name][1].calls == 0 for name in stages)
    by_task = api.states_by_task(api.task_runs(state.state_details.flow_run_id))
    assert all(by_task[name]["Completed"] == 2 for name in stages)


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
