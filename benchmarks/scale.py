"""How the corpus builder's orchestration grows with the corpus (tracker issue "Paper scale").

The real planner (:class:`pipeline.engine.CorpusBuild`), tables, journal and executor run over a
simulated corpus of any size whose stages do no media work: discovery lists ``D`` simulated
playlists of ``E`` episodes each through the real :func:`pipeline.sources.discover` (only the
remote lister is simulated), and the seven stages of :data:`pipeline.runner.PIPELINE` are replaced
by stand-ins with the same names, done statuses and chained resume keys that write a few bytes per
episode (so the "outputs exist" checks stat real files), optionally sleep ``--sleep-ms``, and fail
a fixed share of episodes for good at acquire. The acquire stand-in is an
:class:`~pipeline.acquire.Acquire` (its own keys, ``is_done`` and the duplicate-content step).

Per size (each in a fresh child process, so peak memory is that size's own) it measures:

* ``plan_s``        planning of the first build: discovery, recording it, deciding every stage;
* ``build_s``       the first build, and ``overhead_ms`` = (build - stage work) / episodes;
* ``refresh_s``     a refresh with nothing new (``refresh_ms`` per episode), and its planning;
* ``new1_s``        a refresh with 1 % new episodes (added to existing dramas);
* ``peak_mb``       the child's peak RSS (``getrusage``), ``base_mb`` after imports;
* ``episodes_mb``   episodes.parquet on disk (``failures_kb``, ``dataset_mb`` beside it);
* ``query_s``       reading episodes.parquet and selecting one drama; ``load_s``: the tables
                    as :class:`~pipeline.tables.CorpusTables` (what every run starts with).

It prints one table, a linear fit ``time = a + b*N`` per measure with its R^2 and the log-log slope
(1 = linear), and with ``--json`` writes everything (phase breakdowns included).

``--executor`` names what runs the plan: ``threads`` (:class:`pipeline.runner.ThreadExecutor`
in-process, what ``run_build`` uses) or ``prefect``: the real ``build-corpus`` flow
(:mod:`flows.build_corpus`, its :class:`~flows.build_corpus.PrefectExecutor` on threads) against a
real local Prefect server (:class:`flows.server_load.LocalServer`: ``prefect server start`` over
SQLite, one for all sizes of the run, in the order given). The flow is given the stand-ins, a
sources file of the simulated dramas and the simulated listing; everything else is the flow's own
(settings, pre-flight, task runners, result cache, artifacts, events). For the prefect executor it
also measures the server's load, per build (the first build's in the table):

* ``task_runs``     task runs the server recorded for the flow run (every task, discover and
                    finish steps included), and ``settle_s``: how long after the flow returned the
                    server took to record them all (it records task runs from events);
* ``api_calls``     what the flow's process sent the API: HTTP requests + events
                    (:class:`flows.server_load.ApiCalls`; split by route and event in the JSON);
* ``server_cpu_s``  CPU seconds the server's processes used during the build and the wait;
* ``server_mb``     the sum of the server processes' peak RSS, at the end of the size.

``--task-batch`` sets ``orchestration.task_batch`` (0: auto; 1: one episode per task).

    .venv/bin/python benchmarks/scale.py                       # 1000, 5000, 16650 (333 x 50)
    .venv/bin/python benchmarks/scale.py --sizes 16650 --sleep-ms 5 --workers 4
    .venv/bin/python benchmarks/scale.py --quick               # small sizes, < 60 s (the test)
    .venv/bin/python benchmarks/scale.py --executor prefect    # 1000, 2000, 3000
    .venv/bin/python benchmarks/scale.py --executor prefect --sizes 1000 --task-batch 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = {"threads": [1000, 5000, 16650], "prefect": [1000, 2000, 3000]}
QUICK = {"sizes": [150, 300, 600], "episodes": 30}
#: The prefect executor's quick mode: small sizes with batches of a few episodes (what the test runs).
QUICK_PREFECT = {"sizes": [40, 80], "episodes": 20, "task_batch": 4}
#: The measures of one size: (key, column header, format).
MEASURES = [
    ("plan_s", "plan s", ".2f"),
    ("build_s", "build s", ".1f"),
    ("overhead_ms", "overhead ms/ep", ".2f"),
    ("refresh_s", "refresh s", ".2f"),
    ("refresh_ms", "refresh ms/ep", ".3f"),
    ("refresh_plan_s", "refresh plan s", ".2f"),
    ("new1_s", "1% new s", ".2f"),
    ("peak_mb", "peak MB", ".0f"),
    ("episodes_mb", "episodes MB", ".2f"),
    ("load_s", "load tables s", ".2f"),
    ("query_s", "query s", ".3f"),
]
#: The prefect executor's measures of the server's load (first build), besides :data:`MEASURES`.
PREFECT_MEASURES = [
    ("task_runs", "task runs", ".0f"),
    ("api_calls", "API calls", ".0f"),
    ("api_calls_per_ep", "calls/ep", ".1f"),
    ("settle_s", "settle s", ".1f"),
    ("server_cpu_s", "server CPU s", ".1f"),
    ("server_mb", "server MB", ".0f"),
    ("refresh_api_calls", "refresh calls", ".0f"),
]
PREFECT_FITTED = ["task_runs", "api_calls", "server_cpu_s", "refresh_api_calls"]
#: Measures fitted against N (times and sizes; per-episode ratios are not).
FITTED = [
    "plan_s",
    "build_s",
    "refresh_s",
    "refresh_plan_s",
    "new1_s",
    "peak_mb",
    "episodes_mb",
    "load_s",
    "query_s",
]


# --- the simulated corpus (child process) ------------------------------------------------------


def drama_sizes(total: int, per_drama: int) -> list[int]:
    """Episodes per drama: ``total`` in dramas of ``per_drama`` (the last one takes the rest)."""
    dramas = max(1, total // per_drama)
    sizes = [per_drama] * dramas
    sizes[-1] += total - per_drama * dramas
    return sizes


def with_new_episodes(sizes: list[int], new: int) -> list[int]:
    """``sizes`` after ``new`` episodes were published, one more per drama in turn."""
    grown = list(sizes)
    for i in range(new):
        grown[i % len(grown)] += 1
    return grown


def drama_id(index: int) -> str:
    return f"sim{index:04d}"


def simulated_sources(sizes: list[int]):
    from pipeline.sources import DramaSource, Sources

    dramas = [
        DramaSource(
            id=drama_id(i),
            title=f"Simulated drama {i}",
            language="zh",
            urls=[f"https://sim.invalid/playlist/{drama_id(i)}"],
        )
        for i in range(len(sizes))
    ]
    return Sources(min_episodes=1, dramas=dramas)


def simulated_lister(sizes: list[int]) -> Callable:
    """A remote lister (what yt-dlp does for a playlist) over ``sizes`` episodes per drama."""
    from pipeline.sources import RemoteEntry

    def list_entries(url: str) -> list:
        drama = url.rsplit("/", 1)[-1]
        count = sizes[int(drama[len("sim") :])]
        return [
            RemoteEntry(
                url=f"https://sim.invalid/watch/{drama}/{n}",
                source_key=f"sim:{drama}:{n}",
                title=f"{drama} episode {n}",
            )
            for n in range(1, count + 1)
        ]

    return list_entries


def fails_for_good(source_key: str, rate: float) -> bool:
    digest = hashlib.sha1(source_key.encode()).digest()
    return int.from_bytes(digest[:4], "big") < rate * 2**32


#: What each stand-in writes into the episode row besides its stamp, as the real stage does
#: (path field, content-hash field, other fields); its input is the previous stage's key.
STAGE_FIELDS: dict[str, tuple[str | None, str | None, dict[str, Any]]] = {
    "extract": (
        "audio_path",
        "audio_sha256",
        {"sample_rate": 16000, "channels": 1, "peak_dbfs": -3.0, "rms_dbfs": -21.0},
    ),
    "separate": ("vocals_path", "vocals_sha256", {"separation": "none"}),
    "diarize": (
        "segments_path",
        "segments_sha256",
        {"n_segments": 40, "n_candidate_segments": 52, "n_episode_speakers": 3, "speech_s": 150.0},
    ),
    "consistency": (None, None, {"n_kept_segments": 35, "kept_s": 120.0, "n_drama_speakers": 6}),
    "caption": (None, None, {"n_measured_clips": 35, "n_unreadable_clips": 0}),
    "publish": (None, None, {"n_clips": 35}),
}


def make_stages(data_root: Path, sleep_s: float, fail_rate: float, workers: int) -> list:
    """Stand-ins for :data:`pipeline.runner.PIPELINE`, in its order, with its names."""
    import pandas as pd

    from fsclap.io import write_parquet
    from pipeline.acquire import Acquire
    from pipeline.publish import PublishResult
    from pipeline.runner import stage_names
    from pipeline.stage import Stage, StageContext, StageError

    class GoneForGood(StageError):
        """The simulated content is bad (retried only when the input or config changes)."""

    class SimStage(Stage):
        work_s = 0.0  # time spent in process() by every stand-in (the "stage work")

        def marker(self, episode) -> Path:
            return (
                self.context.data_root / "sim" / self.name / episode.drama_id / episode.episode_id
            )

        def work(self, episode, content: bytes) -> tuple[Path, str]:
            start = time.perf_counter()
            if sleep_s:
                time.sleep(sleep_s)
            path = self.marker(episode)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            SimStage.work_s += time.perf_counter() - start
            return path, hashlib.sha256(content).hexdigest()

    class SimAcquire(Acquire):
        marker = SimStage.marker

        def check(self) -> None:
            pass

        def process(self, episode):
            if fails_for_good(episode.source_key, fail_rate):
                raise GoneForGood(f"{episode.episode_id}: simulated unusable media")
            path, sha = SimStage.work(self, episode, episode.source_key.encode())
            result = episode.copy()
            result.media_path = self.context.rel(path)
            result.media_bytes = path.stat().st_size
            result.media_sha256 = sha
            result.container, result.audio_codec = "mp4", "aac"
            result.media_duration_s = result.duration_s = 240.0
            return result

    def stand_in(name: str, done: str, previous: str) -> type:
        path_field, sha_field, fields = STAGE_FIELDS[name]

        class Simulated(SimStage):
            def input_hash(self, episode):
                return episode.stamp(previous).get("key")

            def outputs(self, episode):
                return [self.marker(episode)]

            def process(self, episode):
                path, sha = self.work(episode, f"{name}:{episode.episode_id}".encode())
                result = episode.copy()
                if path_field:
                    setattr(result, path_field, self.context.rel(path))
                if sha_field:
                    setattr(result, sha_field, sha)
                for field, value in fields.items():
                    setattr(result, field, value)
                return result

        Simulated.name, Simulated.version, Simulated.done_status = name, "1", done
        Simulated.__name__ = f"Sim{name.title()}"
        return Simulated

    class SimPublish(SimStage):
        def finish(self):
            """The corpus-wide step: the dataset manifest, read from episodes.parquet itself."""
            table = pd.read_parquet(self.context.layout.episodes_table)
            published = table[table["status"] == self.done_status]
            path = self.context.data_root / "sim" / "dataset.parquet"
            version = hashlib.sha256(" ".join(sorted(published["episode_id"])).encode())
            reused = path.with_suffix(".version").is_file() and (
                path.with_suffix(".version").read_text() == version.hexdigest()[:12]
            )
            write_parquet(path, published[["episode_id", "drama_id", "n_clips"]])
            path.with_suffix(".version").write_text(version.hexdigest()[:12])
            # what the real publish step reports (the flow's summary artifact and event read it)
            return PublishResult(
                version=version.hexdigest()[:12],
                path=path.parent,
                counts={"train": len(published)},
                split_rule="simulated",
                reused=reused,
            )

    names = stage_names()
    dones = ["acquired", "extracted", "separated", "diarized", "scored", "captioned", "published"]
    context = StageContext(data_root=data_root)
    config = {"workers": workers}
    stages = [SimAcquire(config, context=context)]
    for i, name in enumerate(names[1:], start=1):
        cls = stand_in(name, dones[i], names[i - 1])
        if name == "publish":
            cls = type("SimPublish", (cls, SimPublish), {})
        stages.append(cls(config, context=context))
    return stages, SimStage


class Phases:
    """Cumulative time and calls of named functions while installed (restored on exit)."""

    def __init__(self, targets: list[tuple[Any, str]]):
        self.targets = targets
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> Phases:
        for owner, name in self.targets:
            original = getattr(owner, name)
            self._saved.append((owner, name, original))
            setattr(owner, name, self._timed(name, original))
        return self

    def _timed(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: {"s": round(v, 4), "calls": self.calls[k]} for k, v in self.seconds.items()}


@contextmanager
def patched(owner: Any, **replacements: Any) -> Iterator[None]:
    """``owner``'s attributes replaced while inside (restored on exit)."""
    saved = {name: getattr(owner, name) for name in replacements}
    for name, value in replacements.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(owner, name, value)


def run_threads(args, build, data_root: Path) -> tuple[Any, dict[str, Any]]:
    """The plan on :class:`pipeline.runner.ThreadExecutor` (what ``run_build`` does)."""
    from pipeline.runner import ThreadExecutor

    return build.run(ThreadExecutor()), {}


def run_prefect(args, build, data_root: Path) -> tuple[Any, dict[str, Any]]:
    """The real ``build-corpus`` flow against the server of ``PREFECT_API_URL``: the flow builds
    its settings, reads its sources file and plans as always; only its stages (the stand-ins) and
    the listing (``build``'s class) are the simulation's. Returns the summary and the server's load."""
    import yaml

    import flows.build_corpus as flow_module
    from flows.server_load import ApiCalls, process_group_usage, recorded_task_runs

    sources = data_root.parent / f"{data_root.name}.sources.yaml"
    sources.write_text(yaml.safe_dump(build.sources.model_dump(mode="json", exclude_none=True)))
    before = process_group_usage(args.server_pid)
    with (
        patched(
            flow_module,
            build_stages=lambda settings, names=None: build.stages,
            CorpusBuild=type(build),
        ),
        ApiCalls() as calls,
    ):
        state = flow_module.build_corpus(
            sources=sources,
            data_root=data_root,
            overrides=(f"orchestration.task_batch={args.task_batch}",),
            return_state=True,
        )
        sent = calls.snapshot()  # before the wait below: its requests are not the flow's
    if not state.is_completed():
        raise RuntimeError(f"build-corpus ended {state.name}: {state.message}")
    recorded, settle_s = recorded_task_runs(
        state.state_details.flow_run_id, sent["task_runs_reported"]
    )
    after = process_group_usage(args.server_pid)
    load = {
        **sent,
        "api_calls": sent["http_requests"] + sent["events"],
        "task_runs": recorded,
        "settle_s": settle_s,
        "server_cpu_s": after["cpu_s"] - before["cpu_s"],
        "server_mb": after["peak_mb"],
    }
    return state.result(), load


#: What runs the plan (``--executor``), and the executor class whose steps are timed.
EXECUTORS: dict[str, tuple[Callable, str]] = {
    "threads": (run_threads, "pipeline.runner:ThreadExecutor"),
    "prefect": (run_prefect, "flows.build_corpus:PrefectExecutor"),
}


def one_build(args, data_root: Path, sizes: list[int]) -> dict[str, Any]:
    """One ``corpus build`` over the simulated listing ``sizes``: its time, phases and counts."""
    import importlib

    import pipeline.engine as engine
    from fsclap.config import load_settings
    from pipeline.tables import CorpusTables

    class SimulatedBuild(engine.CorpusBuild):
        def lister(self):
            return simulated_lister(sizes)

    start = time.perf_counter()
    stages, sim = make_stages(data_root, args.sleep_ms / 1000.0, args.fail_rate, args.workers)
    settings = load_settings(overrides={"data_root": str(data_root)})
    build = SimulatedBuild(settings, simulated_sources(sizes), stages)
    run, executor_name = EXECUTORS[args.executor]
    module, _, name = executor_name.partition(":")
    executor_class = getattr(importlib.import_module(module), name)
    work_before = sim.work_s
    targets = [
        (executor_class, "discover"),
        (engine, "record_discovery"),
        (SimulatedBuild, "plan_stage"),
        (engine, "mark_duplicate_content"),
        (executor_class, "finish"),
        (CorpusTables, "_load"),
        (CorpusTables, "_log"),
        (CorpusTables, "flush"),
    ]
    with Phases(targets) as phases:
        summary, load = run(args, build, data_root)
    seconds = time.perf_counter() - start - load.get("settle_s", 0.0)
    s = phases.seconds
    return {
        **load,
        "s": seconds,
        "plan_s": s["discover"] + s["record_discovery"] + s["plan_stage"],
        "work_s": sim.work_s - work_before,
        "run_stage_s": sum(st.seconds for st in summary.stages),
        "phases": phases.summary(),
        "episodes": summary.episodes,
        "work_done": summary.work_done,
        "finished": summary.finished,
        "failures": summary.failures,
    }


def measure_size(args, total: int, work: Path) -> dict[str, Any]:
    """Every measure of one size (runs in its own process)."""
    import pandas as pd

    from fsclap.layout import DataRoot
    from pipeline.runner import PIPELINE
    from pipeline.tables import CorpusTables

    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_root = work / f"n{total}"
    shutil.rmtree(data_root, ignore_errors=True)
    sizes = drama_sizes(total, args.episodes)
    new = max(1, round(total * 0.01))
    stages = len(PIPELINE)
    first = one_build(args, data_root, sizes)
    again = one_build(args, data_root, sizes)
    grown = one_build(args, data_root, with_new_episodes(sizes, new))
    checks = {
        "first build ran every episode": first["work_done"] >= total,
        "refresh did nothing": again["work_done"] == 0,
        "1% refresh ran only the new": grown["work_done"] <= new * stages
        and grown["work_done"] >= new,
        "episodes counted": grown["episodes"] == total + new,
    }

    layout = DataRoot(data_root)
    start = time.perf_counter()
    table = pd.read_parquet(layout.episodes_table)
    one = table[table["drama_id"] == drama_id(len(sizes) // 2)]
    query_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded = CorpusTables(data_root, read_only=True)
    load_s = time.perf_counter() - start
    checks["query found the drama"] = len(one) >= sizes[len(sizes) // 2]
    checks["tables hold every episode"] = len(loaded.episodes) == total + new

    def size_of(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    result = {
        "n": total,
        "dramas": len(sizes),
        "new_episodes": new,
        "plan_s": first["plan_s"],
        "build_s": first["s"],
        "overhead_ms": 1000 * (first["s"] - first["work_s"]) / total,
        "refresh_s": again["s"],
        "refresh_ms": 1000 * again["s"] / total,
        "refresh_plan_s": again["plan_s"],
        "new1_s": grown["s"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_mb": base_mb,
        "episodes_mb": size_of(layout.episodes_table) / 2**20,
        "failures_kb": size_of(layout.failures_table) / 1024,
        "dataset_mb": size_of(data_root / "sim" / "dataset.parquet") / 2**20,
        "load_s": load_s,
        "query_s": query_s,
        "runs": {"first": first, "refresh": again, "new1": grown},
        "checks": checks,
    }
    if args.executor == "prefect":
        result.update(
            {key: first[key] for key in ("task_runs", "api_calls", "settle_s", "server_cpu_s")}
        )
        result["api_calls_per_ep"] = first["api_calls"] / total
        result["server_mb"] = grown["server_mb"]
        result["refresh_api_calls"] = again["api_calls"]
        checks["server recorded every task run"] = all(
            run["task_runs"] == run["task_runs_reported"] for run in (first, again, grown)
        )
    if not args.keep:
        shutil.rmtree(data_root, ignore_errors=True)
    return result


# --- the report (parent process) ---------------------------------------------------------------


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares ``y = a + b*x`` with R^2, and the log-log slope (1: linear, 2: quadratic)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    slope = float("nan")
    if all(x > 0 for x in xs) and all(y > 0 for y in ys) and n > 1:
        lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
        mlx, mly = sum(lx) / n, sum(ly) / n
        slxx = sum((x - mlx) ** 2 for x in lx)
        slope = sum((x - mlx) * (y - mly) for x, y in zip(lx, ly)) / slxx if slxx else slope
    return {"a": a, "b": b, "r2": r2, "loglog_slope": slope}


def measures_of(executor: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(the table's measures, the fitted ones) of ``executor``."""
    if executor == "prefect":
        return MEASURES + PREFECT_MEASURES, FITTED + PREFECT_FITTED
    return MEASURES, FITTED


def render(
    rows: list[dict], fits: dict[str, dict], measures: list[tuple[str, str, str]] = MEASURES
) -> str:
    header = ["N", "dramas", *(label for _, label, _ in measures)]
    body = [
        [str(r["n"]), str(r["dramas"]), *(format(r[key], fmt) for key, _, fmt in measures)]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.rjust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(line, widths)) + " |" for line in body]
    if fits:
        lines += [
            "",
            "| measure | a | b (per episode) | R^2 | log-log slope |",
            "|---|--:|--:|--:|--:|",
        ]
        for key, fit in fits.items():
            lines.append(
                f"| {key} | {fit['a']:.4g} | {fit['b']:.4g} | {fit['r2']:.4f} | {fit['loglog_slope']:.2f} |"
            )
    failed = [f"N={r['n']}: {name}" for r in rows for name, ok in r["checks"].items() if not ok]
    if failed:
        lines += ["", "FAILED CHECKS: " + "; ".join(failed)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="episodes per corpus (default 1000 5000 16650)"
    )
    parser.add_argument("--dramas", type=int, help="with --episodes: one size, dramas x episodes")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per drama (default 50)")
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="each stage's work per episode")
    parser.add_argument("--workers", type=int, default=1, help="threads per stage (default 1)")
    parser.add_argument(
        "--fail-rate", type=float, default=0.002, help="episodes that fail at acquire for good"
    )
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="threads")
    parser.add_argument(
        "--task-batch",
        type=int,
        help="prefect: orchestration.task_batch (episodes per task; 0 auto, the default; 1 none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (< 60 s): what the test runs"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--work", type=Path, help="folder for the data roots (default: a temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data roots")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure one size
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)  # a child: the server
    args = parser.parse_args(argv)
    if args.quick:
        quick = QUICK_PREFECT if args.executor == "prefect" else QUICK
        args.sizes = args.sizes or quick["sizes"]
        args.episodes = quick["episodes"] if args.episodes == 50 else args.episodes
        if args.task_batch is None:
            args.task_batch = quick.get("task_batch")
    if args.dramas:
        args.sizes = [args.dramas * args.episodes]
    args.sizes = args.sizes or DEFAULT_SIZES[args.executor]
    args.task_batch = args.task_batch or 0
    return args


def child_command(args: argparse.Namespace, total: int, work: Path, out: Path) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", str(total)]
    command += ["--episodes", str(args.episodes), "--sleep-ms", str(args.sleep_ms)]
    command += ["--workers", str(args.workers), "--fail-rate", str(args.fail_rate)]
    command += ["--executor", args.executor, "--work", str(work), "--json", str(out)]
    if args.executor == "prefect":
        command += ["--task-batch", str(args.task_batch), "--server-pid", str(args.server_pid)]
    return command + (["--keep"] if args.keep else [])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.one is not None:  # a child: one size, figures to --json
        figures = measure_size(args, args.one, args.work)
        args.json.write_text(json.dumps(figures, indent=1))
        return figures
    from flows.server_load import LocalServer

    work = args.work or Path(tempfile.mkdtemp(prefix="fsclap-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CI": "1"}  # no progress bars
    rows = []
    server = LocalServer(work / "prefect") if args.executor == "prefect" else nullcontext()
    try:
        with server:
            if args.executor == "prefect":
                args.server_pid = server.process.pid
                # the flow's process talks to that server, and logs as `fsclap corpus build` does
                env.update(server.env(), PREFECT_LOGGING_LEVEL="CRITICAL")
                print(f"prefect server at {server.api_url} ({server.startup_s:.1f} s)", flush=True)
            measure_sizes(args, work, env, rows)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    measures, fitted = measures_of(args.executor)
    ns = [float(r["n"]) for r in rows]
    fits = {key: linear_fit(ns, [r[key] for r in rows]) for key in fitted} if len(rows) > 1 else {}
    print(render(rows, fits, measures))
    results = {
        "executor": args.executor,
        "task_batch": args.task_batch if args.executor == "prefect" else None,
        "episodes_per_drama": args.episodes,
        "sleep_ms": args.sleep_ms,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "sizes": rows,
        "fits": fits,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return results


def measure_sizes(args: argparse.Namespace, work: Path, env: dict, rows: list[dict]) -> None:
    """Each size in a child process of its own; its figures appended to ``rows``."""
    for total in args.sizes:
        out = work / f"n{total}.json"
        done = subprocess.run(
            child_command(args, total, work, out), env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"size {total} failed (exit {done.returncode})")
        rows.append(json.loads(out.read_text()))
        print(
            f"N={total}: build {rows[-1]['build_s']:.1f} s, refresh {rows[-1]['refresh_s']:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
