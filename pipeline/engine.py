"""The corpus-build engine: one plan for every build, whatever executes the work.

A build is planned here and only here; an *executor* runs the per-episode work the plan hands it
and reports one :class:`Outcome` per episode. Two executors exist: the in-process thread pool of
:mod:`pipeline.runner` (``fsclap corpus build``) and the Prefect flow of :mod:`flows.build_corpus`
(one task per episode). Both therefore discover, decide, journal, finish and summarise alike.

What :meth:`CorpusBuild.run` does, under the data root's :class:`~pipeline.tables.RunLock`:

1. **discover** the sources' episodes (through the executor, so Prefect shows it as a task) and
   record them (:func:`record_discovery`: new episodes added, listing fields refreshed, the
   discovery failures of these dramas replaced);
2. for each stage in pipeline order, **decide** per episode (:func:`decide`):

   * ``blocked``      — it failed at an earlier stage (or its input is missing);
   * ``known_failed`` — it failed here before with a non-retryable error and neither its input
     nor the stage config changed (``retry_failed`` forces a new attempt);
   * ``done``         — its stored resume key equals the current one and the outputs exist
     (:func:`advance_status` restores a status a drama-wide re-run set back);
   * ``run``          — everything else: handed to the executor;

3. **journal** each outcome as it arrives (the engine is the tables' only writer, so a killed run
   resumes where it stopped and a repeated run does no work);
4. **finish** the stage (its corpus-wide step: segments table, clip manifest, dataset) and, after
   acquire, give byte-identical media to one episode (:func:`mark_duplicate_content`);
5. **summarise** (:class:`BuildSummary`).

:meth:`CorpusBuild.next_stage` answers the same question per episode (which stage it needs next).
:meth:`CorpusBuild.run_streaming` runs the same plan per episode (:class:`Stream`): every stage at
once, an episode handed to its next stage as soon as its outcome is journalled, with the same
decisions, journal, finish steps and summary (a :class:`StreamingExecutor` runs the episodes).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fsclap.config import Settings
from fsclap.layout import DataRoot
from fsclap.log import get_logger
from pipeline.acquire import Acquire, AcquireConfig, DuplicateContent, YtdlpClient
from pipeline.consistency import Consistency
from pipeline.publish import Publish
from pipeline.sources import Discovery, Sources
from pipeline.stage import Stage
from pipeline.tables import CorpusTables, Episode, Failure, RunLock

log = get_logger("pipeline.engine")

#: Episode fields discovery owns; a stage never changes them, so a result computed in an earlier
#: run (a Prefect cache hit) takes them from the current listing.
LISTING_FIELDS = (
    "drama_id",
    "source_url",
    "source_key",
    "source_kind",
    "episode_index",
    "drama_title",
    "language",
    "title",
)

DECISIONS = ("run", "done", "known_failed", "blocked")


# --- what executors report --------------------------------------------------------------------


@dataclass
class Outcome:
    """One episode at one stage, as the executor saw it: the updated episode, or why it failed."""

    episode: Episode  # as handed to the executor
    result: Episode | None = None
    error: str = ""
    message: str = ""
    retryable: bool = True
    cached: bool = False  # finished in an earlier run (Prefect's result cache), not redone

    @property
    def ok(self) -> bool:
        return self.result is not None


class Executor(Protocol):
    """Runs what the engine plans. ``run_stage`` yields one :class:`Outcome` per episode given,
    in any order, as each finishes; it never writes the tables."""

    def discover(self, sources: Sources, lister: Callable) -> Discovery: ...

    def run_stage(self, stage: Stage, episodes: list[Episode]) -> Iterable[Outcome]: ...

    def finish(self, stage: Stage) -> Any: ...


class StreamingExecutor(Protocol):
    """Runs what the engine plans one episode at a time (:meth:`CorpusBuild.run_streaming`):
    ``submit`` starts ``stage`` on one episode and returns a future of its :class:`Outcome`.
    A future that raises instead (a model that cannot load, a kill) stops the build. It never
    writes the tables; ``close`` stops its workers (also when the build stops early).

    An executor for which one unit of work per episode costs too much (a Prefect task, a GPU
    worker's turn) also has ``batch_size(stage)`` and ``submit_batch(stage, episodes)`` (one
    future per episode, in order): the engine then hands that stage up to ``batch_size``
    waiting episodes of one drama at once (see :class:`Stream`)."""

    def discover(self, sources: Sources, lister: Callable) -> Discovery: ...

    def submit(self, stage: Stage, episode: Episode) -> Future[Outcome]: ...

    def finish(self, stage: Stage) -> Any: ...

    def close(self) -> None: ...


def stage_workers(stage: Stage) -> int:
    """Episodes a stage works on at once when streaming: ``stages.<name>.workers``, but one for a
    stage that loads models (GPU/ML: one loaded model, fed one episode after another)."""
    if stage.models():
        return 1
    return max(int(getattr(stage.config, "workers", 1)), 1)


def is_drama_wide(stage: Stage) -> bool:
    """A stage whose per-episode input is its whole drama's output of the stage before (consistency
    links speakers over every episode's diarization): streaming starts it on a drama once every
    episode of that drama has passed the earlier stages. A stage may say so with ``drama_wide``."""
    flag = getattr(stage, "drama_wide", None)
    return bool(flag) if flag is not None else isinstance(stage, Consistency)


def is_corpus_wide(stage: Stage) -> bool:
    """A stage whose per-episode input is an earlier stage's corpus-wide finish (publish reads the
    clip manifest caption's finish writes): streaming starts it once every episode has passed the
    earlier stages and their finish steps ran. A stage may say so with ``corpus_wide``."""
    flag = getattr(stage, "corpus_wide", None)
    return bool(flag) if flag is not None else isinstance(stage, Publish)


# --- summaries --------------------------------------------------------------------------------


@dataclass
class StageSummary:
    name: str
    identity: str
    counts: Counter = field(default_factory=Counter)  # run, done, failed, blocked, known_failed
    cached: int = 0  # of the "done": results taken from the executor's cache
    seconds: float = 0.0  # spent on this stage's per-episode work
    errors: Counter = field(default_factory=Counter)  # failures by error type
    audio_s: float = 0.0  # audio of the episodes this stage ran on in this run

    @property
    def audio_hours_per_hour(self) -> float:
        """Hours of audio the stage got through per hour of wall time in this run (its speed)."""
        return self.audio_s / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        c = self.counts
        cached = f"  (cached {self.cached})" if self.cached else ""
        return (
            f"{self.name:<9} ran {c['run']:>4}  failed {c['failed']:>3}  already done {c['done']:>4}  "
            f"kept failed {c['known_failed']:>3}  blocked {c['blocked']:>3}   [{self.identity}]{cached}"
        )


@dataclass
class BuildSummary:
    data_root: Path
    dramas: int = 0
    skipped_dramas: list[str] = field(default_factory=list)
    episodes: int = 0
    stages: list[StageSummary] = field(default_factory=list)
    finished: int = 0
    hours: float = 0.0
    failure_rows: list[Failure] = field(default_factory=list)  # the current failures, sorted
    finished_steps: dict[str, Any] = field(default_factory=dict)  # stage name -> what finish() gave

    def count_finished(self, tables: CorpusTables, ids: list[str], stages: list[Stage]) -> None:
        """Episodes through every stage of the run (and their hours), and the current failures."""
        last = stages[-1].done_status if stages else None
        finished = [tables.episodes[i] for i in ids if tables.episodes[i].status == last]
        self.finished = len(finished)
        self.hours = sum(e.duration_s or 0.0 for e in finished) / 3600.0
        self.failure_rows = sorted(tables.failures.values(), key=lambda f: (f.stage, f.item_id))

    @property
    def failures(self) -> int:
        """The data root's current failures (what ``failures.parquet`` holds after the run)."""
        return len(self.failure_rows)

    def outcome(self) -> str:
        """One line: what finished and what failed (a Prefect run's state message)."""
        return (
            f"{self.finished} of {self.episodes} episodes through every stage; {self.failures} "
            f"failure(s) recorded in {DataRoot(self.data_root).failures_table}"
        )

    @property
    def work_done(self) -> int:
        """Episodes processed (successfully or not) by any stage in this run."""
        return sum(s.counts["run"] + s.counts["failed"] for s in self.stages)

    def render(self) -> str:
        layout = DataRoot(self.data_root)
        lines = [
            f"corpus build: {self.dramas} dramas ({len(self.skipped_dramas)} skipped), {self.episodes} episodes",
            *("  " + s.line() for s in self.stages),
            f"  finished all stages: {self.finished} episodes, {self.hours:.2f} h of audio",
            f"  failures: {self.failures} (see {layout.failures_table})",
            f"  episodes: {layout.episodes_table}",
        ]
        return "\n".join(lines)


# --- the plan ---------------------------------------------------------------------------------


class CorpusBuild:
    """One build of ``stages`` over ``sources`` into ``settings.data_root`` (resumable, idempotent)."""

    def __init__(
        self,
        settings: Settings,
        sources: Sources,
        stages: list[Stage],
        *,
        retry_failed: bool = False,
    ):
        self.settings = settings
        self.sources = sources
        self.stages = stages
        self.retry_failed = retry_failed
        self.data_root = Path(settings.data_root).expanduser()
        self.order = {s.name: i for i, s in enumerate(stages)}

    def lister(self) -> Callable:
        """How discovery lists a playlist: the acquire stage's client (its rate limits and
        cookies), or one built from the settings when acquire is not part of this run."""
        acquire = next((s for s in self.stages if isinstance(s, Acquire)), None)
        if acquire is not None:
            return acquire.client.list_entries
        config = AcquireConfig(**self.settings.stages.get("acquire", {}))
        return YtdlpClient(config).list_entries

    def decide(self, stage: Stage, episode: Episode) -> str:
        return decide(stage, episode, self.order, self.retry_failed)

    def next_stage(self, episode: Episode) -> tuple[Stage, str] | None:
        """The first stage ``episode`` is not done with, and what happens there (``run``,
        ``known_failed`` or ``blocked``); None when it is done with every stage of the build."""
        for stage in self.stages:
            decision = self.decide(stage, episode)
            if decision != "done":
                return stage, decision
        return None

    def plan_stage(
        self, stage: Stage, ids: list[str], tables: CorpusTables
    ) -> tuple[list[Episode], StageSummary]:
        """The episodes ``stage`` must run, and a summary counting the others by decision."""
        summary = StageSummary(stage.name, stage.describe())
        todo: list[Episode] = []
        for episode_id in ids:
            episode = tables.episodes[episode_id]
            decision = self.decide(stage, episode)
            if decision == "run":
                todo.append(episode)
                continue
            summary.counts[decision] += 1
            if decision == "done":
                advance_status(tables, stage, episode, self.stages)
        return todo, summary

    def record(
        self, tables: CorpusTables, stage: Stage, outcome: Outcome, summary: StageSummary
    ) -> None:
        """Journal one outcome at once (a killed run loses no finished episode)."""
        episode = outcome.episode
        if outcome.ok:
            tables.save_episode(with_listing(outcome.result, episode))
            tables.resolve_failure(stage.name, episode.episode_id)
            if outcome.cached:
                summary.counts["done"] += 1
                summary.cached += 1
            else:
                summary.counts["run"] += 1
                summary.audio_s += outcome.result.duration_s or 0.0
            return
        record_stage_failure(
            tables, stage, episode, outcome.error, outcome.message, outcome.retryable
        )
        summary.counts["failed"] += 1
        summary.errors[outcome.error] += 1

    def discover(
        self, executor: Executor | StreamingExecutor, tables: CorpusTables, summary: BuildSummary
    ) -> tuple[list[str], Discovery]:
        discovery = executor.discover(self.sources, self.lister())
        ids = record_discovery(tables, discovery)
        summary.dramas, summary.episodes = len(discovery.dramas), len(ids)
        summary.skipped_dramas = list(discovery.skipped_dramas)
        log.info(
            "discovered %d episodes of %d dramas (%d skipped)",
            len(ids),
            len(discovery.dramas),
            len(discovery.skipped_dramas),
        )
        return ids, discovery

    def run(self, executor: Executor) -> BuildSummary:
        """Stage by stage: every episode through one stage (and its finish) before the next."""
        summary = BuildSummary(data_root=self.data_root)
        with RunLock(self.data_root), CorpusTables(self.data_root) as tables:
            ids, _ = self.discover(executor, tables, summary)
            for stage in self.stages:
                todo, stage_summary = self.plan_stage(stage, ids, tables)
                if todo:
                    start = time.perf_counter()
                    for outcome in executor.run_stage(stage, todo):
                        self.record(tables, stage, outcome, stage_summary)
                    stage_summary.seconds = time.perf_counter() - start
                log.info("%s", stage_summary.line())
                summary.stages.append(stage_summary)
                if stage.has_finish:
                    tables.flush(force=True)  # the corpus-wide step reads what the tables hold
                    summary.finished_steps[stage.name] = executor.finish(stage)
                if isinstance(stage, Acquire):
                    mark_duplicate_content(tables, ids, stage)
            summary.count_finished(tables, ids, self.stages)
        self.log_finished(summary)
        return summary

    def run_streaming(self, executor: StreamingExecutor, queue: int = 4) -> BuildSummary:
        """Streaming: an episode goes to its next stage as soon as its outcome is journalled.

        The same plan as :meth:`run` (decide, journal, finish, summary), scheduled per episode
        (see :class:`Stream`); at most ``workers + queue`` episodes wait or run at a stage."""
        summary = BuildSummary(data_root=self.data_root)
        with RunLock(self.data_root), CorpusTables(self.data_root) as tables:
            ids, _ = self.discover(executor, tables, summary)
            try:
                Stream(self, executor, tables, ids, summary, queue).run()
            finally:
                executor.close()
            summary.count_finished(tables, ids, self.stages)
        self.log_finished(summary)
        return summary

    @staticmethod
    def log_finished(summary: BuildSummary) -> None:
        log.info(
            "corpus build finished: %d/%d episodes through all stages, %d failures",
            summary.finished,
            summary.episodes,
            summary.failures,
        )


# --- streaming ---------------------------------------------------------------------------------


class Stream:
    """One streaming pass of a :class:`CorpusBuild` (the engine's thread does all planning and
    journalling; the executor only runs episodes).

    Every episode walks the stages in order: at each stage it is decided (:func:`decide`) when it
    arrives there; ``done``, ``known_failed`` and ``blocked`` are counted and it walks on, ``run``
    hands it to the stage, and its journalled outcome sends it on to the next stage at once. So the
    decisions, the journal and the summary are those of the stage-by-stage :meth:`CorpusBuild.run`;
    what differs is only when each episode's turn comes. Three gates keep the results identical:

    * after **acquire**, an episode waits until every episode before it in sources order has passed
      acquire, and byte-identical media is resolved (:func:`mark_duplicate_content`, the same
      owner rule) before it goes on;
    * a **drama-wide** stage (consistency) takes a drama once every episode of the drama has passed
      the stages before it (its input is the whole drama's diarization);
    * a **corpus-wide** stage (publish) starts once every episode has passed the stages before it
      and their finish steps ran (it reads the clip manifest).

    A stage's finish step (and acquire's duplicate check) runs once every episode has passed the
    stage, in stage order, after flushing the tables, as in :meth:`CorpusBuild.run`.

    Backpressure: at most ``capacity = workers + queue`` episodes are handed to a stage and not
    back yet, and a stage takes a new episode only while what it holds fits into the next stage's
    capacity; episodes enter the build (sources order) only while no routed episode waits for room.

    Batches: a stage the executor takes in batches (``batch_size(stage)`` above 1, e.g. a GPU stage
    of the Prefect executor) gets up to that many waiting episodes of one drama per hand-over, its
    capacity grows to ``(workers + 1) * batch + queue`` (room for the next batch to gather), and it
    takes a partial batch only while it has nothing in hand, so a busy stage collects the next
    batch while an idle one never waits.
    """

    def __init__(
        self,
        build: CorpusBuild,
        executor: StreamingExecutor,
        tables: CorpusTables,
        ids: list[str],
        summary: BuildSummary,
        queue: int,
    ):
        self.build, self.executor, self.tables, self.ids = build, executor, tables, ids
        self.summary = summary
        self.stages = build.stages
        n = self.n = len(self.stages)
        self.summaries = [StageSummary(s.name, s.describe()) for s in self.stages]
        batch_size = getattr(executor, "batch_size", None)  # optional (StreamingExecutor)
        self.batch = [max(int(batch_size(s)), 1) if batch_size else 1 for s in self.stages]
        # a batched stage also has room for its next batch to gather while one runs
        self.capacity = [
            stage_workers(s) * b + (b if b > 1 else 0) + max(queue, 0)
            for s, b in zip(self.stages, self.batch)
        ]
        self.drama_wide = [is_drama_wide(s) for s in self.stages]
        self.corpus_wide = [is_corpus_wide(s) for s in self.stages]
        self.index = {episode_id: i for i, episode_id in enumerate(ids)}
        self.drama = {episode_id: tables.episodes[episode_id].drama_id for episode_id in ids}
        # where each episode is: the index of the stage it has not passed yet (n: through)
        self.pos = dict.fromkeys(ids, 0)
        self.at = [0] * (n + 1)
        self.at[0] = len(ids)
        self.drama_at: dict[str, list[int]] = defaultdict(lambda: [0] * (n + 1))
        for episode_id in ids:
            self.drama_at[self.drama[episode_id]][0] += 1
        self.backlog = deque(ids)
        self.entry: list[deque[str]] = [deque() for _ in self.stages]  # waiting for room
        self.held: list[dict[tuple, list[str]]] = [{} for _ in self.stages]  # at a gate
        self.inflight = [0] * n
        self.futures: dict[Future, tuple[int, Episode]] = {}
        self.passed = [False] * n  # every episode past the stage, its finish step done
        self.started: list[float | None] = [None] * n
        self.ended: list[float | None] = [None] * n
        self.acquire = next((i for i, s in enumerate(self.stages) if isinstance(s, Acquire)), None)
        self.prefix = 0  # ids[:prefix] have all passed acquire
        self.prefix_held: list[tuple[int, str]] = []  # heap, by sources order
        self.shas = Counter(e.media_sha256 for e in tables.episodes.values() if e.media_sha256)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.pump()
            if not self.futures:
                break
            done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: self.index[self.futures[f][1].episode_id]):
                k, episode = self.futures.pop(future)
                outcome = future.result()  # an exception here stops the build, as in run()
                self.inflight[k] -= 1
                self.ended[k] = time.perf_counter()
                self.record(k, outcome)
                self.route(episode.episode_id, k + 1)
        left = len(self.backlog) + sum(map(len, self.entry)) + len(self.prefix_held)
        left += sum(len(v) for held in self.held for v in held.values())
        if left or not all(self.passed):
            raise RuntimeError(f"streaming build stalled with {left} episode(s) waiting")
        for k, stage_summary in enumerate(self.summaries):
            if self.started[k] is not None:
                stage_summary.seconds = (self.ended[k] or self.started[k]) - self.started[k]
        self.summary.stages.extend(self.summaries)

    def pump(self) -> None:
        """Move everything that can move: new episodes in, gates open, work handed out, finishes."""
        moved = True
        while moved:
            moved = False
            while self.backlog and self.admitting():
                self.route(self.backlog.popleft(), 0)
                moved = True
            moved |= self.release()
            for k in range(self.n):
                while self.entry[k] and self.has_room(k) and self.takes_batch(k):
                    self.submit(k)
                    moved = True
            moved |= self.finish_passed()

    def admitting(self) -> bool:
        """Whether a new episode may enter: nothing waits for room at a stage (an episode waiting
        for a batched stage's batch to fill does not hold the others back)."""
        for k, waiting in enumerate(self.entry):
            if waiting and (
                self.batch[k] == 1 or len(waiting) >= self.batch[k] or not self.has_room(k)
            ):
                return False
        return True

    def has_room(self, k: int) -> bool:
        if self.inflight[k] >= self.capacity[k]:
            return False
        if k + 1 < self.n:  # what this stage holds must fit into the next one
            waiting = self.inflight[k] + self.inflight[k + 1] + len(self.entry[k + 1])
            return waiting < self.capacity[k + 1]
        return True

    def takes_batch(self, k: int) -> bool:
        """Whether stage ``k`` takes what waits now: always, one at a time; in batches, once the
        episodes of one drama at the head of its queue make a full batch or are followed by
        another drama's (they cannot grow), and at once while the stage has nothing in hand."""
        if self.batch[k] == 1 or not self.inflight[k]:
            return True
        waiting, drama = self.entry[k], self.drama[self.entry[k][0]]
        for i in range(min(len(waiting), self.batch[k])):
            if self.drama[waiting[i]] != drama:
                return True
        return len(waiting) >= self.batch[k]

    def submit(self, k: int) -> None:
        """Hand stage ``k`` the next waiting episode, or up to a batch of them of one drama."""
        waiting = self.entry[k]
        group = [waiting.popleft()]
        self.inflight[k] += 1
        while (
            len(group) < self.batch[k]
            and waiting
            and self.drama[waiting[0]] == self.drama[group[0]]
            and self.inflight[k] < self.capacity[k]
        ):
            group.append(waiting.popleft())
            self.inflight[k] += 1
        episodes = [self.tables.episodes[episode_id] for episode_id in group]
        stage = self.stages[k]
        if len(episodes) == 1:
            futures = [self.executor.submit(stage, episodes[0])]
        else:
            futures = self.executor.submit_batch(stage, episodes)
        for future, episode in zip(futures, episodes, strict=True):
            self.futures[future] = (k, episode)
        if self.started[k] is None:
            self.started[k] = time.perf_counter()

    def record(self, k: int, outcome: Outcome) -> None:
        episode_id = outcome.episode.episode_id
        before = self.tables.episodes[episode_id].media_sha256
        self.build.record(self.tables, self.stages[k], outcome, self.summaries[k])
        after = self.tables.episodes[episode_id].media_sha256
        if before != after:
            if before:
                self.shas[before] -= 1
            if after:
                self.shas[after] += 1

    # --- walking the stages -------------------------------------------------------------------

    def move(self, episode_id: str, k: int) -> None:
        old = self.pos[episode_id]
        if old != k:
            counts = self.drama_at[self.drama[episode_id]]
            self.at[old] -= 1
            counts[old] -= 1
            self.at[k] += 1
            counts[k] += 1
            self.pos[episode_id] = k

    def route(self, episode_id: str, k: int) -> None:
        """Walk ``episode_id`` on from stage ``k`` to where it must run, wait, or the end."""
        while k < self.n:
            self.move(episode_id, k)
            gate = self.gate(k, episode_id)
            if gate == ("prefix",):
                heapq.heappush(self.prefix_held, (self.index[episode_id], episode_id))
                return
            if gate is not None:
                self.held[k].setdefault(gate, []).append(episode_id)
                return
            if self.acquire is not None and k == self.acquire + 1:
                self.check_duplicates(episode_id)
            stage = self.stages[k]
            episode = self.tables.episodes[episode_id]
            decision = self.build.decide(stage, episode)
            if decision == "run":
                self.entry[k].append(episode_id)
                return
            self.summaries[k].counts[decision] += 1
            if decision == "done":
                advance_status(self.tables, stage, episode, self.stages)
            k += 1
        self.move(episode_id, self.n)

    def gate(self, k: int, episode_id: str) -> tuple | None:
        """Why ``episode_id`` cannot be decided at stage ``k`` yet (None: it can)."""
        if self.acquire is not None and k == self.acquire + 1:
            while self.prefix < len(self.ids) and self.pos[self.ids[self.prefix]] > self.acquire:
                self.prefix += 1
            if self.index[episode_id] >= self.prefix:
                return ("prefix",)
        if self.corpus_wide[k] and (sum(self.at[:k]) or not all(self.passed[:k])):
            return ("corpus",)
        drama = self.drama[episode_id]
        if self.drama_wide[k] and sum(self.drama_at[drama][:k]):
            return ("drama", drama)
        return None

    def release(self) -> bool:
        moved = False
        if self.prefix_held:
            k = self.acquire + 1
            self.gate(k, self.prefix_held[0][1])  # advances the prefix
            while self.prefix_held and self.prefix_held[0][0] < self.prefix:
                _, episode_id = heapq.heappop(self.prefix_held)
                self.route(episode_id, k)
                moved = True
        for k, held in enumerate(self.held):
            for gate in list(held):
                if self.gate(k, held[gate][0]) is None:
                    for episode_id in held.pop(gate):
                        self.route(episode_id, k)
                    moved = True
        return moved

    def check_duplicates(self, episode_id: str) -> None:
        """Resolve byte-identical media before an acquired episode goes on (only when its content
        is not unique or it was marked before: the check reads the whole table)."""
        episode = self.tables.episodes[episode_id]
        marked = episode.status == "failed" and episode.error == DuplicateContent.__name__
        if marked or (episode.media_sha256 and self.shas[episode.media_sha256] > 1):
            mark_duplicate_content(self.tables, self.ids, self.stages[self.acquire])

    def finish_passed(self) -> bool:
        """Run, in stage order, the steps of every stage all episodes have passed."""
        moved = False
        for k, stage in enumerate(self.stages):
            if self.passed[k]:
                continue
            if sum(self.at[: k + 1]) or self.inflight[k]:
                break
            log.info("%s", self.summaries[k].line())
            if stage.has_finish:
                self.tables.flush(force=True)  # the corpus-wide step reads what the tables hold
                self.summary.finished_steps[stage.name] = self.executor.finish(stage)
            if isinstance(stage, Acquire):
                mark_duplicate_content(self.tables, self.ids, stage)
            self.passed[k] = moved = True
        return moved


# --- the steps, one function each -------------------------------------------------------------


def record_discovery(tables: CorpusTables, discovery: Discovery) -> list[str]:
    """Add new episodes, refresh the listing fields of known ones, and replace the discovery
    failures of the dramas in this sources file. Returns the episode ids to process."""
    for found in discovery.episodes:
        known = tables.episodes.get(found.episode_id)
        if known is None:
            tables.save_episode(found)
            continue
        if any(getattr(known, f) != getattr(found, f) for f in LISTING_FIELDS):
            tables.save_episode(with_listing(known, found))
    current = {(p.stage, p.item_id) for p in discovery.problems}
    dramas = set(discovery.dramas)
    for failure in tables.failures_of("discover"):
        if failure.drama_id in dramas and (failure.stage, failure.item_id) not in current:
            tables.resolve_failure(failure.stage, failure.item_id)
    for problem in discovery.problems:
        log.warning("%s: %s", problem.error, problem.message)
        known = tables.failures.get((problem.stage, problem.item_id))
        if (
            known
            and (known.error, known.message) == (problem.error, problem.message)
            and not problem.retryable
        ):
            continue  # unchanged since the last run: nothing to write
        tables.record_failure(
            problem.stage,
            problem.item_id,
            problem.error,
            problem.message,
            drama_id=problem.drama_id,
            retryable=problem.retryable,
        )
    return [e.episode_id for e in discovery.episodes]


def with_listing(episode: Episode, listed: Episode) -> Episode:
    """``episode`` with the listing fields of ``listed`` (a copy when any differs)."""
    if all(getattr(episode, f) == getattr(listed, f) for f in LISTING_FIELDS):
        return episode
    updated = episode.copy()
    for name in LISTING_FIELDS:
        setattr(updated, name, getattr(listed, name))
    return updated


def decide(stage: Stage, episode: Episode, order: dict[str, int], retry_failed: bool) -> str:
    """What ``stage`` does with ``episode``: run, done, blocked or known_failed (see module doc)."""
    if (
        episode.status == "failed"
        and episode.failed_stage in order
        and order[episode.failed_stage] < order[stage.name]
    ):
        return "blocked"
    key = stage.key(episode)
    if key is None:
        return "blocked"
    if episode.status == "failed" and episode.failed_stage == stage.name:
        if retry_failed or episode.retryable or episode.failed_key != key:
            return "run"
        return "known_failed"
    return "done" if stage.is_done(episode, key) else "run"


def advance_status(
    tables: CorpusTables, stage: Stage, episode: Episode, stages: list[Stage]
) -> None:
    """An episode done at ``stage`` whose status names an earlier stage of this run is done here again.

    A drama-wide stage (consistency) re-runs on a drama's finished episodes when a new episode of that
    drama arrives, which sets their status back; the later stages still count them as done (their
    resume keys match) and must restore the status. Statuses of stages outside this run, and
    failures, are left alone."""
    rank = {s.done_status: i for i, s in enumerate(stages)}
    here = next(i for i, s in enumerate(stages) if s is stage)
    if rank.get(episode.status, here) < here:
        advanced = episode.copy()
        advanced.status = stage.done_status
        tables.save_episode(advanced)


def record_stage_failure(
    tables: CorpusTables, stage: Stage, episode: Episode, error: str, message: str, retryable: bool
) -> None:
    log.warning("%s failed on %s: %s: %s", stage.name, episode.episode_id, error, message)
    failed = episode.copy()
    failed.status = "failed"
    failed.failed_stage = stage.name
    failed.error = error
    failed.message = " ".join(message.split())[:500]
    failed.retryable = retryable
    failed.failed_key = stage.key(episode)
    tables.save_episode(failed)
    tables.record_failure(
        stage.name,
        episode.episode_id,
        error,
        message,
        drama_id=episode.drama_id,
        retryable=retryable,
        key=failed.failed_key,
    )


def mark_duplicate_content(tables: CorpusTables, ids: list[str], acquire: Stage) -> None:
    """Byte-identical media under several episodes: one keeps it (the one marked before stays
    marked; else the furthest along; else the first in sources order), the others fail as
    ``DuplicateContent``. An episode whose twin has gone is released again."""

    def is_marked(episode: Episode) -> bool:
        return episode.status == "failed" and episode.error == DuplicateContent.__name__

    # every episode of the table takes part (not only this run's), so a twin listed in a source
    # that could not be listed this time still owns its content
    position = {episode_id: i for i, episode_id in enumerate(ids)}
    groups: dict[str, list[tuple[int, Episode]]] = {}
    for episode in list(tables.episodes.values()):
        if episode.media_sha256 is None or not acquire.is_done(episode):
            continue
        if (
            episode.status == "failed"
            and episode.failed_stage == acquire.name
            and not is_marked(episode)
        ):
            continue
        groups.setdefault(episode.media_sha256, []).append(
            (position.get(episode.episode_id, len(ids)), episode)
        )
    for members in groups.values():
        owner = min(members, key=lambda m: (is_marked(m[1]), -len(m[1].stamps), m[0]))[1]
        for _, episode in members:
            if episode is not owner and not is_marked(episode):
                message = f"same media content (sha256 {episode.media_sha256[:12]}...) as episode {owner.episode_id}; used once"
                record_stage_failure(
                    tables, acquire, episode, DuplicateContent.__name__, message, False
                )
            elif episode is owner and is_marked(episode):
                released = episode.copy()
                released.status = acquire.done_status
                released.failed_stage = released.error = released.message = None
                released.retryable = None
                released.failed_key = None
                tables.save_episode(released)
                tables.resolve_failure(acquire.name, episode.episode_id)
