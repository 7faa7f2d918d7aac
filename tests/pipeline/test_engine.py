"""The planning engine with toy stages and toy executors: the plan per episode and per stage, and
that any executor (thread pool, serial, one that dies, one that answers from a cache, streaming)
gets the same journal, resume and summary."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import pytest

from fsclap.config import load_settings
from fsclap.testing.toy_stages import Copy, Write
from pipeline.engine import CorpusBuild, Outcome
from pipeline.runner import ThreadExecutor, attempt
from pipeline.sources import Discovery, Sources
from pipeline.stage import Stage, StageContext, StageError, short_hash
from pipeline.tables import CorpusTables, Episode, read_episodes, read_failures


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
        super().__init__()
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


class StreamingThreads(ThreadsWithDiscovery):
    """The in-process executor, streaming (every stage at once)."""


class BatchingThreads(StreamingThreads):
    """Streaming, taking ``copy`` in batches of up to 3 (as the Prefect executor takes a stage
    that loads a model); records each batch it was handed."""

    def __init__(self, discovery):
        super().__init__(discovery)
        self.handed: list[tuple[str, list[str]]] = []

    def batch_size(self, stage: Stage) -> int:
        return 3 if stage.name == "copy" else 1

    def submit_batch(self, stage: Stage, episodes: list[Episode]) -> list[Future]:
        self.handed.append((stage.name, [e.episode_id for e in episodes]))
        return [self.submit(stage, episode) for episode in episodes]


class SerialStream(SerialExecutor):
    """Streaming, one episode at a time in the engine's thread (deterministic); ``die_after``
    kills it like :class:`SerialExecutor`."""

    def submit(self, stage: Stage, episode: Episode) -> Future:
        if self.die_after is not None and len(self.ran) >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.ran.append((stage.name, episode.episode_id))
        future = Future()
        future.set_result(attempt(stage, episode))
        return future

    def close(self) -> None:
        pass


def run(build: CorpusBuild, executor, queue: int = 1):
    """Stage by stage, or streaming for the streaming executors."""
    if hasattr(executor, "submit"):
        return build.run_streaming(executor, queue=queue)
    return build.run(executor)


@pytest.mark.parametrize(
    "executor", [SerialExecutor, ThreadsWithDiscovery, StreamingThreads, SerialStream]
)
def test_any_executor_gets_the_same_journal_and_summary(tmp_path, executor):
    build = make_build(tmp_path)
    summary = run(build, executor(listed(KEYS)))
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

    again = run(make_build(tmp_path), executor(listed(KEYS)))
    assert again.work_done == 0
    assert [dict(s.counts) for s in again.stages] == [
        {"done": 3, "known_failed": 1},
        {"done": 3, "blocked": 1},
    ]


@pytest.mark.parametrize("executor", [SerialExecutor, SerialStream])
def test_a_killed_executor_loses_no_finished_episode(tmp_path, executor):
    with pytest.raises(KeyboardInterrupt):
        run(make_build(tmp_path), SerialExecutor(listed(KEYS), die_after=2))
    resumed = executor(listed(KEYS))
    summary = run(make_build(tmp_path), resumed)
    # the kill came after "c" was written and "bad" failed: neither is tried again
    assert sorted(e for name, e in resumed.ran if name == "write") == ["d-a", "d-b"]
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


# --- streaming ------------------------------------------------------------------------------


class Events:
    """What the stand-in stages did, and when (shared by the threads of a streaming run)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, str, str]] = []  # (time, start|end, stage, episode)

    def add(self, what: str, stage: str, episode_id: str) -> None:
        with self.lock:
            self.log.append((time.monotonic(), what, stage, episode_id))

    def times(self, what: str, stage: str, episode_id: str | None = None) -> list[float]:
        return [t for t, w, s, e in self.log if (w, s) == (what, stage) and episode_id in (None, e)]


def timed(cls, events: Events, pause: float):
    """``cls`` recording start and end of each episode (``pause`` seconds; a "slow" key x4)."""

    class Timed(cls):
        def process(self, episode: Episode) -> Episode:
            events.add("start", self.name, episode.episode_id)
            time.sleep(pause * (4 if "slow" in episode.source_key else 1))
            try:
                return super().process(episode)
            finally:
                events.add("end", self.name, episode.episode_id)

    return Timed


class Gather(Stage):
    """A drama-wide stand-in (like consistency): its input is every copy of the drama, so it may
    only run once the whole drama is through :class:`Copy`; writes one file per drama."""

    name, version, done_status = "gather", "1", "gathered"
    drama_wide = True

    def inputs(self, drama_id: str) -> list[Path]:
        return sorted((self.context.data_root / "copy").glob(f"{drama_id}-*.txt"))

    def input_hash(self, episode: Episode) -> str | None:
        mine = self.context.data_root / "copy" / f"{episode.episode_id}.txt"
        if not mine.exists():
            return None
        return short_hash([(p.name, p.read_text()) for p in self.inputs(episode.drama_id)])

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.context.data_root / "gather" / f"{episode.drama_id}.txt"]

    def process(self, episode: Episode) -> Episode:
        (path,) = self.outputs(episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(p.read_text() for p in self.inputs(episode.drama_id)))
        return episode.copy()


def dramas(**keys: list[str]) -> Discovery:
    episodes = [
        Episode(
            episode_id=f"{drama}-{key}",
            drama_id=drama,
            source_url=f"file:{drama}-{key}",
            source_key=f"{drama}-{key}",
            title="t",
            episode_index=i,
        )
        for drama, names in keys.items()
        for i, key in enumerate(names)
    ]
    return Discovery(episodes=episodes, dramas=list(keys))


def streaming_build(
    data_root: Path, events: Events, pause: float = 0.0, workers: int = 1
) -> CorpusBuild:
    settings = load_settings(overrides={"data_root": str(data_root)})
    context = StageContext(data_root=data_root)
    config = {"workers": workers}
    stages = [
        timed(Write, events, pause)(config, context=context),
        timed(Copy, events, pause)(config, context=context),
        timed(Gather, events, pause)(context=context),
    ]
    return CorpusBuild(settings, Sources(min_episodes=1, dramas=[]), stages)


def test_streaming_starts_a_later_stage_before_an_earlier_one_finished_every_episode(tmp_path):
    events = Events()
    build = streaming_build(tmp_path, events, pause=0.03)
    summary = build.run_streaming(StreamingThreads(dramas(d=list("abcdef"))), queue=1)
    assert summary.finished == 6
    first_copy = min(events.times("start", "copy"))
    last_write = max(events.times("end", "write"))
    assert first_copy < last_write  # copy started while write still had episodes to do
    assert [s.counts["run"] for s in summary.stages] == [6, 6, 6]


def test_streaming_never_hands_a_stage_more_than_workers_plus_queue(tmp_path):
    class Counting(StreamingThreads):
        def __init__(self, discovery):
            super().__init__(discovery)
            self.lock = threading.Lock()
            self.now: dict[str, int] = {}
            self.peak: dict[str, int] = {}

        def submit(self, stage, episode):
            with self.lock:
                self.now[stage.name] = self.now.get(stage.name, 0) + 1
                self.peak[stage.name] = max(self.peak.get(stage.name, 0), self.now[stage.name])
            future = super().submit(stage, episode)

            def done(_):
                with self.lock:
                    self.now[stage.name] -= 1

            future.add_done_callback(done)
            return future

    events = Events()
    executor = Counting(dramas(d=[f"e{i}" for i in range(12)]))
    summary = streaming_build(tmp_path, events, pause=0.01, workers=2).run_streaming(
        executor, queue=1
    )
    assert summary.finished == 12
    assert max(executor.peak.values()) <= 3  # workers 2 + queue 1
    # and the stages overlapped all the same
    assert min(events.times("start", "copy")) < max(events.times("end", "write"))


def test_a_drama_wide_stage_takes_a_drama_once_all_its_episodes_are_ready(tmp_path):
    events = Events()
    build = streaming_build(tmp_path, events, pause=0.03, workers=2)
    # drama "d" is quick; drama "e" has slow episodes and one that fails at write
    discovery = dramas(d=["a", "b"], e=["slow1", "bad", "slow2", "slow3"])
    summary = build.run_streaming(StreamingThreads(discovery), queue=1)
    for members in (["d-a", "d-b"], ["e-slow1", "e-slow2", "e-slow3"]):
        gather = min(t for m in members for t in events.times("start", "gather", m))
        ready = max(t for m in members for t in events.times("end", "copy", m))
        assert gather > ready  # after the whole drama was copied
    # ... but drama "d" did not wait for drama "e"
    assert min(events.times("start", "gather", "d-a")) < max(events.times("end", "copy"))
    assert [dict(s.counts) for s in summary.stages] == [
        {"run": 5, "failed": 1},
        {"run": 5, "blocked": 1},
        {"run": 5, "blocked": 1},
    ]
    assert (tmp_path / "gather" / "e.txt").read_text() == "E-SLOW1E-SLOW2E-SLOW3"


def tables_and_files(data_root: Path) -> tuple[list[dict], list[dict], dict[str, str]]:
    episodes = read_episodes(data_root).drop(columns=["updated_at"])
    failures = read_failures(data_root).drop(columns=["time", "first_time"])
    files = {
        p.relative_to(data_root).as_posix(): p.read_text() for p in sorted(data_root.rglob("*.txt"))
    }
    return episodes.to_dict("records"), failures.to_dict("records"), files


def test_streaming_builds_the_same_corpus_as_stage_by_stage(tmp_path):
    corpus = {"d": ["a", "bad", "b"], "e": ["c", "d"], "f": ["bad"]}
    grown = {**corpus, "e": ["c", "d", "new"]}  # a new episode re-gathers its drama
    results = []
    executors = (
        ("stages", ThreadsWithDiscovery),
        ("stream", StreamingThreads),
        ("batches", BatchingThreads),
    )
    for name, executor in executors:
        root = tmp_path / name
        counts = []
        for listing in (corpus, corpus, grown):
            build = streaming_build(root, Events(), workers=2)
            summary = run(build, executor(dramas(**listing)), queue=0)
            counts.append([dict(s.counts) for s in summary.stages])
        results.append((counts, tables_and_files(root)))
    (stage_counts, stage_tables), *streamed = results
    for stream_counts, stream_tables in streamed:
        assert stream_counts == stage_counts
        assert stream_tables == stage_tables
    assert stage_counts[2][2] == {"run": 3, "done": 2, "blocked": 2}  # drama "e" gathered again
    assert stage_tables[2]["gather/e.txt"] == "E-CE-DE-NEW"


def test_a_killed_stream_resumes_without_redoing_finished_work(tmp_path):
    events = Events()
    killed = SerialStream(dramas(d=["a", "bad", "b"], e=["c"]), die_after=5)
    with pytest.raises(KeyboardInterrupt):
        streaming_build(tmp_path, events).run_streaming(killed, queue=1)
    with CorpusTables(tmp_path) as tables:  # what the killed run journalled
        finished = {(s, e.episode_id) for e in tables.episodes.values() for s in e.stamps}
    assert {stage for stage, _ in finished} == {"write", "copy"}  # killed mid-stream
    resumed = SerialStream(dramas(d=["a", "bad", "b"], e=["c"]))
    summary = streaming_build(tmp_path, Events()).run_streaming(resumed, queue=1)
    assert not finished & set(resumed.ran)
    assert summary.finished == 3
    assert summary.stages[0].counts["known_failed"] + summary.stages[0].counts["failed"] == 1


def test_a_batched_stage_gets_episodes_of_one_drama_together_and_never_waits_idle(tmp_path):
    """A stage the executor takes in batches is handed up to a batch of one drama's waiting
    episodes while it is busy, and whatever waits when it is idle (so the first hand-over is a
    single episode: nothing makes an idle stage wait for a batch to fill)."""
    events = Events()
    executor = BatchingThreads(dramas(d=[f"a{i}" for i in range(8)], e=["b0", "b1", "b2"]))
    build = streaming_build(tmp_path, events, pause=0.02)
    summary = build.run_streaming(executor, queue=1)
    assert summary.finished == 11
    copy = [ids for name, ids in executor.handed if name == "copy"]
    assert copy and all(1 < len(ids) <= 3 for ids in copy)
    assert all(len({i.split("-")[0] for i in ids}) == 1 for ids in copy)  # one drama each
    handed = sum(len(ids) for ids in copy)
    assert handed < 11  # some copies went one at a time (an idle stage takes what waits)
    assert [s.counts["run"] for s in summary.stages] == [11, 11, 11]
