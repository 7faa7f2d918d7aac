"""The planning engine with toy stages and toy executors: the plan per episode and per stage, and
that any executor (thread pool, serial, one that dies, one that answers from a cache) gets the
same journal, resume and summary."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from fsclap.config import load_settings
from pipeline.engine import CorpusBuild, Outcome
from pipeline.runner import ThreadExecutor
from pipeline.sources import Discovery, Sources
from pipeline.stage import Stage, StageContext, StageError, short_hash
from pipeline.tables import Episode, read_episodes, read_failures


class BadContent(StageError):
    pass


class Write(Stage):
    """Writes a file per episode; episodes whose source key says "bad" fail for good."""

    name, version, done_status = "write", "1", "written"

    def input_hash(self, episode: Episode) -> str | None:
        return short_hash(episode.source_key)

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.context.data_root / "write" / f"{episode.episode_id}.txt"]

    def process(self, episode: Episode) -> Episode:
        if "bad" in episode.source_key:
            raise BadContent(f"{episode.episode_id}: bad content")
        (path,) = self.outputs(episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(episode.source_key)
        out = episode.copy()
        out.media_path = self.context.rel(path)
        return out


class Copy(Stage):
    """Copies what :class:`Write` wrote (its input is that file's content)."""

    name, version, done_status = "copy", "1", "copied"

    def input_hash(self, episode: Episode) -> str | None:
        if not episode.media_path:
            return None
        source = self.context.abs(episode.media_path)
        return hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.context.data_root / "copy" / f"{episode.episode_id}.txt"]

    def process(self, episode: Episode) -> Episode:
        (path,) = self.outputs(episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.context.abs(episode.media_path).read_text().upper())
        out = episode.copy()
        out.audio_path = self.context.rel(path)
        return out


def listed(keys: list[str], title: str = "t") -> Discovery:
    episodes = [
        Episode(
            episode_id=f"d-{key}",
            drama_id="d",
            source_url=f"file:{key}",
            source_key=key,
            title=title,
        )
        for key in keys
    ]
    return Discovery(episodes=episodes, dramas=["d"])


class SerialExecutor:
    """Runs episodes one by one in reverse order; ``die_after`` stops it like a kill."""

    def __init__(self, discovery: Discovery, die_after: int | None = None):
        self.discovery = discovery
        self.die_after = die_after
        self.ran: list[tuple[str, str]] = []

    def discover(self, sources, lister) -> Discovery:
        return self.discovery

    def run_stage(self, stage: Stage, episodes: list[Episode]):
        for episode in reversed(episodes):
            if self.die_after is not None and len(self.ran) >= self.die_after:
                raise KeyboardInterrupt("killed")
            self.ran.append((stage.name, episode.episode_id))
            try:
                yield Outcome(episode, stage.run(episode))
            except StageError as exc:
                yield Outcome(episode, None, exc.error_type, str(exc), exc.retryable)

    def finish(self, stage: Stage):
        return stage.finish()


class ThreadsWithDiscovery(ThreadExecutor):
    def __init__(self, discovery: Discovery):
        self.discovery = discovery

    def discover(self, sources, lister) -> Discovery:
        return self.discovery


def make_build(data_root: Path) -> CorpusBuild:
    settings = load_settings(overrides={"data_root": str(data_root)})
    context = StageContext(data_root=data_root)
    stages = [Write(context=context), Copy(context=context)]
    return CorpusBuild(settings, Sources(min_episodes=1, dramas=[]), stages)


KEYS = ["a", "b", "bad", "c"]


def test_plan_per_episode(tmp_path):
    build = make_build(tmp_path)
    fresh = listed(["a"]).episodes[0]
    stage, decision = build.next_stage(fresh)
    assert (stage.name, decision) == ("write", "run")

    build.run(SerialExecutor(listed(KEYS)))
    episodes = read_episodes(tmp_path)
    done = episodes[episodes["episode_id"] == "d-a"].iloc[0]
    assert build.next_stage(Episode.from_row(done.to_dict())) is None
    bad = episodes[episodes["episode_id"] == "d-bad"].iloc[0]
    stage, decision = build.next_stage(Episode.from_row(bad.to_dict()))
    assert (stage.name, decision) == ("write", "known_failed")


@pytest.mark.parametrize("executor", [SerialExecutor, ThreadsWithDiscovery])
def test_any_executor_gets_the_same_journal_and_summary(tmp_path, executor):
    build = make_build(tmp_path)
    summary = build.run(executor(listed(KEYS)))
    assert [(s.name, dict(s.counts)) for s in summary.stages] == [
        ("write", {"run": 3, "failed": 1}),
        ("copy", {"run": 3, "blocked": 1}),
    ]
    assert summary.stages[0].errors == {"BadContent": 1}
    assert (summary.finished, summary.failures) == (3, 1)
    assert [f.item_id for f in summary.failure_rows] == ["d-bad"]
    episodes = read_episodes(tmp_path).set_index("episode_id")
    assert episodes.loc["d-c", "status"] == "copied"
    assert (tmp_path / "copy" / "d-c.txt").read_text() == "C"
    assert read_failures(tmp_path)["error"].tolist() == ["BadContent"]

    again = make_build(tmp_path).run(executor(listed(KEYS)))
    assert again.work_done == 0
    assert [dict(s.counts) for s in again.stages] == [
        {"done": 3, "known_failed": 1},
        {"done": 3, "blocked": 1},
    ]


def test_a_killed_executor_loses_no_finished_episode(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        make_build(tmp_path).run(SerialExecutor(listed(KEYS), die_after=2))
    resumed = SerialExecutor(listed(KEYS))
    summary = make_build(tmp_path).run(resumed)
    # the kill came after "c" was written and "bad" failed: neither is tried again
    assert [e for name, e in resumed.ran if name == "write"] == ["d-b", "d-a"]
    assert dict(summary.stages[0].counts) == {"run": 2, "done": 1, "known_failed": 1}
    assert summary.finished == 3


def test_cached_outcomes_count_as_done_and_take_the_current_listing(tmp_path):
    make_build(tmp_path).run(SerialExecutor(listed(["a"], title="old")))
    previous = Episode.from_row(read_episodes(tmp_path).iloc[0].to_dict())

    class Cached(SerialExecutor):
        def run_stage(self, stage, episodes):
            for episode in episodes:  # an earlier run's result, listed under the old title
                yield Outcome(episode, previous, cached=True)

    (tmp_path / "write" / "d-a.txt").unlink()  # so the plan hands the episode out again
    summary = make_build(tmp_path).run(Cached(listed(["a"], title="new")))
    first = summary.stages[0]
    assert (first.counts["done"], first.cached, first.counts["run"]) == (1, 1, 0)
    assert read_episodes(tmp_path).iloc[0]["title"] == "new"


def test_a_finish_step_reads_every_result_of_this_run_from_the_tables(tmp_path):
    seen = {}

    class CopyAndCount(Copy):
        def finish(self):  # e.g. the dataset's provenance, read from episodes.parquet itself
            table = pd.read_parquet(self.context.layout.episodes_table)
            seen.update(table.set_index("episode_id")["status"])

    build = make_build(tmp_path)
    build.stages[1] = CopyAndCount(context=build.stages[1].context)
    build.run(SerialExecutor(listed(KEYS)))
    assert {k: v for k, v in seen.items() if v == "copied"} == {
        "d-a": "copied",
        "d-b": "copied",
        "d-c": "copied",
    }
