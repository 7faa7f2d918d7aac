"""build-corpus end to end under a real Prefect API (test harness): one task per stage per episode,
retries on network failures, bad episodes failing their task but not the flow, artifacts, an
incremental refresh, parameter validation before any work, and resume after a killed run."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from flows.build_corpus import build_corpus
from fsclap.errors import FsclapError

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["acquire", "extract", "separate", "diarize", "consistency", "caption", "publish"]


def run_flow(params: dict):
    state = build_corpus(**params, return_state=True)
    return state, state.state_details.flow_run_id


def test_build_corpus_runs_each_stage_as_tasks_and_records_bad_episodes(first_build, api):
    state, data_root = first_build["state"], first_build["data_root"]
    assert state.is_completed(), (
        state.message
    )  # two failing episodes failed their tasks, not the flow
    summary = state.result()
    assert summary.episodes == 4 and summary.finished == 2 and summary.failures == 2
    # Completed, and the run's state message says how many failed (UI, --watch, flow-run inspect)
    assert state.message.startswith("2 of 4 episodes through every stage; 2 failure(s) recorded")
    assert [s.name for s in summary.stages] == STAGES

    episodes = pd.read_parquet(data_root / "manifests" / "episodes.parquet").set_index("episode_id")
    assert (episodes["status"] == "published").sum() == 2
    failures = pd.read_parquet(data_root / "manifests" / "failures.parquet").set_index("error")
    assert (
        set(failures.index) == {"Unreachable", "UnreadableMedia"}
        and (failures["stage"] == "acquire").all()
    )
    clips = pd.read_parquet(data_root / "manifests" / "clips.parquet")
    assert len(clips) >= 2 and clips["caption"].str.len().gt(10).all()
    version = (data_root / "datasets" / "LATEST").read_text().strip()
    assert (data_root / "datasets" / version / "train.parquet").is_file()

    runs = api.task_runs(first_build["flow_run_id"])
    by_task = api.states_by_task(runs)
    # one task per stage per episode that reached it (the two bad ones stop at acquire)
    assert by_task["acquire"] == Counter({"Completed": 2, "Failed": 2})
    for stage in STAGES[1:]:
        assert by_task[stage] == Counter({"Completed": 2}), stage
    assert by_task["discover"] == Counter({"Completed": 1})
    assert {name for name in by_task if name.endswith("-finish")} == {
        "consistency-finish",
        "caption-finish",
        "publish-finish",
    }
    # task runs read <stage>/<drama>/<episode index>, discovery has no random suffix
    acquire = {r.name: r for r in runs if r.name.startswith("acquire/")}
    assert "discover" in {r.name for r in runs}

    def run_of(episode_id):
        return acquire[f"acquire/drama01/{episodes.loc[episode_id, 'episode_index']}"]

    ids = episodes.index
    unreachable = next(i for i in ids if episodes.loc[i, "error"] == "Unreachable")
    unreadable = next(i for i in ids if episodes.loc[i, "error"] == "UnreadableMedia")
    assert run_of(unreachable).run_count == 2  # a network failure is retried once
    assert run_of(unreadable).run_count == 1  # bad content is not
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(first_build["flow_run_id"])
    assert re.fullmatch(r"build-corpus data \d{4}-\d\d-\d\d \d\d:\d\d", flow_run.name)
    assert all(
        {"fsclap", f"stage:{r.name.split('/')[0]}"} <= set(r.tags) for r in runs if "/" in r.name
    )
    assert not any("gpu" in r.tags for r in runs)  # the offline profile loads no paper model


def test_build_corpus_artifacts(first_build, api):
    found = api.artifacts(first_build["flow_run_id"])
    summary = found["build-corpus-summary"]
    assert summary.type == "markdown"
    text = summary.data
    assert (
        "through all stages: **2**" in text and "failures: **2**" in text and "kept ratio" in text
    )
    assert "| acquire | 2 | 2 |" in text and "Unreachable" in text and "UnreadableMedia" in text
    # each stage's speed: hours of audio through it per hour of its wall time
    header = next(line for line in text.splitlines() if line.startswith("| stage |"))
    column = [c.strip() for c in header.strip("|").split("|")].index("audio h per h")
    extract = next(line for line in text.splitlines() if line.startswith("| extract |"))
    assert float(extract.strip("|").split("|")[column]) > 0
    table = found["build-corpus-failures"]
    assert table.type == "table" and {row["error"] for row in _table_rows(table)} == {
        "Unreachable",
        "UnreadableMedia",
    }
    images = [a for a in found.values() if a.type == "image"]
    assert {a.key for a in images} == {"dataset-attribute-levels", "dataset-measured-values"}
    # each image is the published dataset's plot, byte for byte (its content: test_publish.py)
    data_root = first_build["data_root"]
    version = (data_root / "datasets" / "LATEST").read_text().strip()
    plots = sorted((data_root / "datasets" / version / "plots").glob("*.png"))
    assert len(plots) == len(images)
    assert {a.data for a in images} == {
        "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii") for p in plots
    }


def _table_rows(artifact) -> list[dict]:
    import json

    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return data


def test_refresh_processes_only_new_episodes(
    first_build, served, episode_urls, sources_file, tmp_path, api
):
    """The nightly refresh: a third episode appears in the listing; only it goes through the
    per-episode stages (the drama-wide ones re-score the drama), nothing is downloaded again."""
    import shutil

    data_root = tmp_path / "data"
    shutil.copytree(first_build["data_root"], data_root)
    sources = sources_file(tmp_path / "sources.yaml", episode_urls(served))
    state, flow_run_id = run_flow({"sources": str(sources), "data_root": str(data_root)})
    assert state.is_completed(), state.message
    summary = {s.name: s.counts for s in state.result().stages}
    assert summary["acquire"]["run"] == 1 and summary["acquire"]["done"] == 2
    for stage in ("extract", "separate", "diarize"):
        assert summary[stage]["run"] == 1 and summary[stage]["done"] == 2, stage
    by_task = api.states_by_task(api.task_runs(flow_run_id))
    for stage in ("acquire", "extract", "separate", "diarize"):
        assert sum(by_task[stage].values()) == 1, stage  # no task at all for the finished episodes
    episodes = pd.read_parquet(data_root / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "published").sum() == 3


def test_invalid_parameters_are_rejected_before_any_work(tmp_path, drama):
    from prefect.exceptions import ParameterBindError

    sources = str(drama / "sources.yaml")
    data_root = tmp_path / "data"
    given = {"sources": sources, "data_root": str(data_root)}
    # Prefect checks the types against the signature: the run fails before the flow starts
    for bad, reason in (
        ({"stages": ["separat"]}, "stages.0: Input should be 'acquire', 'extract'"),
        ({"acquire_retries": "many"}, "acquire_retries: Input should be a valid integer"),
        ({"profile": "gpu"}, "profile: Input should be 'offline' or 'paper'"),
    ):
        state = build_corpus(**given, **bad, return_state=True)
        assert state.is_failed() and "invalid parameters" in state.message, bad
        assert reason in state.message, state.message
    with pytest.raises(ParameterBindError, match="unexpected keyword argument 'bogus'"):
        build_corpus(**given, bogus=1)
    # the flow's model next, first thing in the run: one line saying what is wrong
    for bad, reason in (
        ({"acquire_retries": -1}, "acquire_retries: Input should be greater than or equal to 0"),
        ({"acquire_retry_delay_s": 7200}, "acquire_retry_delay_s: Input should be less than"),
        ({"stages": []}, "stages: List should have at least 1 item"),
        ({"overrides": ["no-equals-sign"]}, "overrides: expected key=value"),
    ):
        state = build_corpus(**given, **bad, return_state=True)
        assert state.is_failed() and "\n" not in state.message, state.message
        assert state.message.startswith(
            f"Flow run encountered an exception: FsclapError: invalid parameters: {reason}"
        ), state.message
    with pytest.raises(FsclapError, match=r"^invalid parameters: acquire_retries: .* 0$"):
        build_corpus(**given, acquire_retries=-1)
    # semantic checks run next, still before any work: settings, sources, stage resources
    with pytest.raises(FsclapError, match="unknown stage"):
        build_corpus(**given, overrides=["stages.separat.method=none"])
    with pytest.raises(FsclapError, match="sources file not found"):
        build_corpus(sources=tmp_path / "missing.yaml", data_root=data_root)
    with pytest.raises(FsclapError, match="htdemucs.yaml not found"):
        build_corpus(**given, profile="paper")
    assert not data_root.exists()


def test_deployment_runs_refuse_relative_paths(tmp_path, drama, monkeypatch):
    """A worker runs a flow in a temporary folder: a relative data root would vanish with it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "PREFECT__RUNTIME__DEPLOYMENT__ID", "2f1f3e52-6a55-4bd5-9d3e-0f0c6f0f4b8e"
    )  # as on a worker
    with pytest.raises(
        FsclapError, match=r"relative path\(s\) in a deployment run: data_root, sources"
    ):
        build_corpus(sources="sources.yaml", data_root="data")
    with pytest.raises(FsclapError, match="relative path.*: data_root;"):
        build_corpus(sources=drama / "sources.yaml")  # the settings' default data root, "data"
    assert not (tmp_path / "data").exists()


def test_stage_names_in_the_schema_follow_the_pipeline():
    from typing import get_args

    from flows.params import StageName
    from pipeline.runner import stage_names

    assert list(get_args(StageName)) == stage_names()


KILLER = """
import os, signal, sys
from flows.runtime import prepare_local_prefect
prepare_local_prefect()
from pipeline import tables
from flows.build_corpus import build_corpus

save = tables.CorpusTables.save_episode
extracted = [0]

def save_episode(self, episode):
    if episode.status == "extracted":
        extracted[0] += 1
        if extracted[0] == 2:  # the second extraction finished (its task result is persisted) but is not journalled
            os.kill(os.getpid(), signal.SIGKILL)
    return save(self, episode)

tables.CorpusTables.save_episode = save_episode
build_corpus(sources=sys.argv[1], data_root=sys.argv[2], stages=["acquire", "extract", "separate"],
             overrides=["stages.extract.workers=1"])
"""


def test_killed_worker_leaves_a_resumable_state(tmp_path, episode_urls, sources_file, api):
    """kill -9 mid-run: the next run redoes nothing that finished -- journalled work is done, and
    work that finished but was not journalled comes from the task cache."""
    from prefect.settings import PREFECT_API_URL

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None))
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "CI": "1", "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.run(
        [sys.executable, str(script), str(sources), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    state, flow_run_id = run_flow(
        {
            "sources": str(sources),
            "data_root": str(tmp_path / "data"),
            "stages": ["acquire", "extract", "separate"],
        }
    )
    assert state.is_completed(), state.message
    counts = {s.name: s.counts for s in state.result().stages}
    assert counts["acquire"]["done"] == 3 and counts["acquire"]["run"] == 0
    assert (
        counts["extract"]["done"] == 2 and counts["extract"]["run"] == 1
    )  # one journalled + one from the cache
    assert counts["separate"]["run"] == 3
    by_task = api.states_by_task(api.task_runs(flow_run_id))
    assert by_task["extract"] == Counter({"Cached": 1, "Completed": 1})
    assert "acquire" not in by_task
    episodes = pd.read_parquet(tmp_path / "data" / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "separated").all() and len(episodes) == 3


def test_cli_corpus_build_runs_the_flow(tmp_path, episode_urls, sources_file, capsys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from fsclap.cli import main

    sources = sources_file(tmp_path / "s.yaml", episode_urls(None)[:1])
    with get_client(sync_client=True) as client:
        before = len(
            client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["build-corpus"]))
            )
        )
    code = main(
        [
            "corpus",
            "build",
            "--sources",
            str(sources),
            "--data-root",
            str(tmp_path / "data"),
            "--stage",
            "acquire",
            "--stage",
            "extract",
        ]
    )
    out = capsys.readouterr().out
    assert (
        code == 0
        and "corpus build: 1 dramas (0 skipped), 1 episodes" in out
        and "extract   ran    1" in out
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["build-corpus"]))
        )
    assert len(runs) == before + 1
    assert main(["corpus", "build", "--sources", str(sources), "--stage", "separat"]) == 2
    assert "unknown stage(s): separat" in capsys.readouterr().err

    # finished, but an episode failed (recorded): exit 3, and the line says where to look
    (tmp_path / "notes.mp4").write_text("a text file renamed to .mp4\n")
    with_bad = sources_file(
        tmp_path / "s2.yaml", [*episode_urls(None)[:1], str(tmp_path / "notes.mp4")]
    )
    data = tmp_path / "data"
    code = main(
        [
            "corpus",
            "build",
            "--sources",
            str(with_bad),
            "--data-root",
            str(data),
            "--stage",
            "acquire",
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 3
        and f"finished with 1 failed item(s): see {data / 'manifests' / 'failures.parquet'}" in err
    )


def test_discovery_lists_again_after_a_network_error():
    """A playlist the lister cannot reach for a network reason is listed again (backoff), not
    recorded as a failure at the first try; a content error is not retried."""
    from flows.build_corpus import discover_episodes
    from pipeline.sources import RemoteEntry, Sources

    class Unreachable(FsclapError):
        error_type, retryable = "Unreachable", True

    calls = []

    def lister(url):
        calls.append(url)
        if len(calls) < 3:
            raise Unreachable(f"cannot reach {url}")
        return [RemoteEntry(url=f"{url}/e{i}.mp4", source_key=f"{url}/e{i}") for i in (1, 2)]

    sources = Sources(
        min_episodes=1,
        dramas=[{"id": "d1", "title": "D", "language": "en", "urls": ["https://example.org/list"]}],
    )
    found = discover_episodes.fn(sources, lister, retries=2, retry_delay_s=0.0)
    assert len(calls) == 3 and len(found.episodes) == 2 and not found.problems
    calls.clear()
    found = discover_episodes.fn(sources, lister, retries=1, retry_delay_s=0.0)
    assert len(calls) == 2 and "Unreachable" in [p.error for p in found.problems]

    class NotAPlaylist(FsclapError):
        error_type, retryable = "NotAPlaylist", False

    def not_a_playlist(url):
        calls.append(url)
        raise NotAPlaylist(f"{url} is not a playlist")

    calls.clear()
    found = discover_episodes.fn(sources, not_a_playlist, retries=3, retry_delay_s=0.0)
    assert len(calls) == 1 and "NotAPlaylist" in [p.error for p in found.problems]


def test_streaming_through_prefect_tasks_builds_the_same_corpus(
    tmp_path, episode_urls, sources_file, monkeypatch
):
    """orchestration.streaming: the flow schedules each episode's next stage as soon as its task
    ends (the engine's run_streaming); the data root it builds equals the stage-by-stage one."""
    from pipeline.engine import CorpusBuild

    sources = sources_file(tmp_path / "sources.yaml", episode_urls(None)[:2])
    streamed_calls = []
    original = CorpusBuild.run_streaming

    def spy(self, executor, queue=4):
        streamed_calls.append(type(executor).__name__)
        return original(self, executor, queue)

    monkeypatch.setattr(CorpusBuild, "run_streaming", spy)
    plain = build_corpus(sources=sources, data_root=tmp_path / "plain")
    streamed = build_corpus(
        sources=sources,
        data_root=tmp_path / "streamed",
        overrides=["orchestration.streaming=true"],
    )
    assert streamed_calls == ["PrefectExecutor"]
    assert [s.counts["run"] for s in streamed.stages] == [s.counts["run"] for s in plain.stages]
    columns = ["episode_id", "status", "duration_s"]
    tables = [
        pd.read_parquet(root / "manifests" / "episodes.parquet")[columns].sort_values("episode_id")
        for root in (tmp_path / "plain", tmp_path / "streamed")
    ]
    assert tables[0].reset_index(drop=True).equals(tables[1].reset_index(drop=True))
    latest = [
        (root / "datasets" / "LATEST").read_text()
        for root in (tmp_path / "plain", tmp_path / "streamed")
    ]
    assert latest[0] == latest[1]  # the dataset version is a hash of its content


# --- episodes batched per task -------------------------------------------------------------------


def test_batches_hold_consecutive_episodes_of_one_drama():
    from flows.build_corpus import AUTO_BATCH_FROM, AUTO_TASKS_PER_STAGE, batch_size, batches
    from pipeline.tables import Episode

    def episode(drama: str, index: int | None) -> Episode:
        return Episode(
            episode_id=f"{drama}-{index}",
            drama_id=drama,
            source_url="u",
            source_key=f"{drama}-{index}",
            episode_index=index,
        )

    given = [episode("b", 2), episode("a", 1), episode("a", 2), episode("a", 3), episode("a", 5)]
    given += [episode("b", 1), episode("a", 6), episode("b", None)]
    names = [[e.episode_id for e in batch] for batch in batches(given, 2)]
    # per drama in order of appearance, by index; a gap (a4 done) or the size ends a batch
    assert names == [["b-1", "b-2"], ["b-None"], ["a-1", "a-2"], ["a-3"], ["a-5", "a-6"]]
    assert [len(b) for b in batches(given, 1)] == [1] * len(given)

    class Named:
        def __init__(self, name):
            self.name = name

    extract, acquire = Named("extract"), Named("acquire")
    assert batch_size(extract, AUTO_BATCH_FROM - 1, 0) == 1  # small builds: one per task
    assert batch_size(extract, 17_000, 0) == -(-17_000 // AUTO_TASKS_PER_STAGE)
    assert batch_size(extract, 10, 4) == 4 and batch_size(acquire, 17_000, 0) == 1


def _toy_build(data_root: Path, task_batch: int, bad: str = "d1:2", streaming: bool = False):
    """Two toy stages (write, copy) over two dramas of five episodes through the PrefectExecutor
    in a flow of their own; the episode ``bad`` fails for good at write."""
    from prefect import flow

    from flows.build_corpus import PrefectExecutor
    from flows.params import BuildCorpusParams
    from flows.runtime import TaskRunners
    from fsclap.config import load_settings
    from fsclap.testing.toy_stages import Copy, Write
    from pipeline.engine import CorpusBuild
    from pipeline.sources import RemoteEntry, Sources
    from pipeline.stage import StageContext

    class ToyBuild(CorpusBuild):
        def lister(self):
            def list_entries(url):
                drama = url.rsplit("/", 1)[-1]
                return [
                    RemoteEntry(url=f"{url}/{n}", source_key=f"{drama}:{n}") for n in range(1, 6)
                ]

            return list_entries

    dramas = [
        {"id": d, "title": d, "language": "en", "urls": [f"https://toy.invalid/{d}"]}
        for d in ("d1", "d2")
    ]
    settings = load_settings(
        overrides={"data_root": str(data_root), "orchestration": {"task_batch": task_batch}}
    )
    context = StageContext(data_root=data_root)

    @flow(name="toy-build", persist_result=False)
    def toy_build():
        build = ToyBuild(
            settings,
            Sources(min_episodes=1, dramas=dramas),
            [Write({"fail_when": bad}, context=context), Copy(context=context)],
        )
        with TaskRunners(settings) as runners:
            executor = PrefectExecutor(BuildCorpusParams(), settings, runners)
            if streaming:
                return build.run_streaming(executor, queue=1)
            return build.run(executor)

    state = toy_build(return_state=True)
    return state.result(), state.state_details.flow_run_id


def _tables(data_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.tables import read_episodes, read_failures

    episodes = read_episodes(data_root).drop(columns=["updated_at"])
    failures = read_failures(data_root).drop(columns=["time", "first_time"])
    return (
        episodes.sort_values("episode_id").reset_index(drop=True),
        failures.sort_values("item_id").reset_index(drop=True),
    )


def test_batched_tasks_build_the_same_corpus_and_fail_one_episode_alone(tmp_path, api):
    """orchestration.task_batch: consecutive episodes of a drama share a task named
    <stage>/<drama>/<first>-<last>; the tables equal a one-episode-per-task build's, and the
    episode that fails inside a batch is the only one that fails."""
    single, _ = _toy_build(tmp_path / "single", task_batch=1)
    batched, flow_run_id = _toy_build(tmp_path / "batched", task_batch=3)
    for a, b in zip(_tables(tmp_path / "single"), _tables(tmp_path / "batched")):
        pd.testing.assert_frame_equal(a, b)
    episodes, failures = _tables(tmp_path / "batched")
    assert (episodes["status"] == "copied").sum() == 9
    assert failures[["stage", "error"]].values.tolist() == [["write", "BadContent"]]
    assert [s.counts for s in batched.stages] == [s.counts for s in single.stages]

    runs = api.task_runs(flow_run_id)
    names = {r.name for r in runs if "/" in r.name}
    # d1's episode 2 failed at write, so copy takes d1's 1 alone and 3-5 together
    assert names == {
        "write/d1/1-3",
        "write/d1/4-5",
        "write/d2/1-3",
        "write/d2/4-5",
        "copy/d1/1",
        "copy/d1/3-5",
        "copy/d2/1-3",
        "copy/d2/4-5",
    }
    assert all(r.state.is_completed() for r in runs if "/" in r.name and "-" in r.name)


def test_a_streaming_build_feeds_batched_stages_in_batches(tmp_path, api):
    """Streaming with orchestration.task_batch: a stage gets tasks of several consecutive
    episodes of one drama (the engine hands over what waits), and the tables equal a
    one-episode-per-task stage-by-stage build's."""
    _toy_build(tmp_path / "single", task_batch=1)
    _, flow_run_id = _toy_build(tmp_path / "stream", task_batch=3, streaming=True)
    for a, b in zip(_tables(tmp_path / "single"), _tables(tmp_path / "stream")):
        pd.testing.assert_frame_equal(a, b)
    names = [r.name for r in api.task_runs(flow_run_id) if "/" in r.name]
    ranges = [n for n in names if "-" in n.rsplit("/", 1)[-1]]
    assert ranges, names  # some tasks carried several episodes
    covered = []
    for name in names:
        stage, drama, span = name.split("/")
        first, _, last = span.partition("-")
        covered += [(stage, drama, i) for i in range(int(first), int(last or first) + 1)]
    assert len(covered) == len(set(covered))  # no episode handed twice
    assert sum(1 for c in covered if c[0] == "write") == 10


def test_a_cached_batch_reruns_only_its_failed_or_lost_episodes(tmp_path, api):
    """The journal lost (a run died before recording its batches): the next run takes each batch
    from the result cache, except the episode that failed and one whose output is gone."""
    import shutil

    data_root = tmp_path / "data"
    _toy_build(data_root, task_batch=5)
    episodes, _ = _tables(data_root)
    lost = episodes[(episodes["drama_id"] == "d2") & (episodes["episode_index"] == 3)]
    (data_root / "copy" / f"{lost['episode_id'].iloc[0]}.txt").unlink()  # of batch copy/d2/1-5
    shutil.rmtree(data_root / "manifests")
    again, flow_run_id = _toy_build(data_root, task_batch=5)
    write, copy = again.stages
    assert write.cached == 9 and write.counts["failed"] == 1 and write.counts["run"] == 0
    assert copy.cached == 8 and copy.counts["run"] == 1
    runs = [r for r in api.task_runs(flow_run_id) if "/" in r.name]
    redone = sorted(r.name for r in runs if r.state.name != "Cached")
    # the failed episode (d1's 2) ran again in a batch of its own, and so did the lost copy
    assert redone == ["copy/d2/3", "write/d1/2"], [(r.name, r.state.name) for r in runs]
    episodes, failures = _tables(data_root)
    assert (episodes["status"] == "copied").sum() == 9 and len(failures) == 1
