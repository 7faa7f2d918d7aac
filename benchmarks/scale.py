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

    .venv/bin/python benchmarks/scale.py                       # 1000, 5000, 16650 (333 x 50)
    .venv/bin/python benchmarks/scale.py --sizes 16650 --sleep-ms 5 --workers 4
    .venv/bin/python benchmarks/scale.py --quick               # small sizes, < 60 s (the test)

``--executor`` names what runs the plan; only ``threads`` (:class:`pipeline.runner.ThreadExecutor`)
exists so far; the Prefect flow against a local server is the next increment.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = [1000, 5000, 16650]
QUICK = {"sizes": [150, 300, 600], "episodes": 30}
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
            write_parquet(path, published[["episode_id", "drama_id", "n_clips"]])
            return path

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


def threads_executor():
    from pipeline.runner import ThreadExecutor

    return ThreadExecutor()


#: What can run the plan (``--executor``); the Prefect flow is the next increment.
EXECUTORS: dict[str, Callable] = {"threads": threads_executor}


def one_build(args, data_root: Path, sizes: list[int]) -> dict[str, Any]:
    """One ``corpus build`` over the simulated listing ``sizes``: its time, phases and counts."""
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
    executor = EXECUTORS[args.executor]()
    work_before = sim.work_s
    targets = [
        (type(executor), "discover"),
        (engine, "record_discovery"),
        (SimulatedBuild, "plan_stage"),
        (engine, "mark_duplicate_content"),
        (type(executor), "finish"),
        (CorpusTables, "_load"),
        (CorpusTables, "_log"),
        (CorpusTables, "flush"),
    ]
    with Phases(targets) as phases:
        summary = build.run(executor)
    seconds = time.perf_counter() - start
    s = phases.seconds
    return {
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


def render(rows: list[dict], fits: dict[str, dict]) -> str:
    header = ["N", "dramas", *(label for _, label, _ in MEASURES)]
    body = [
        [str(r["n"]), str(r["dramas"]), *(format(r[key], fmt) for key, _, fmt in MEASURES)]
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
        "--quick", action="store_true", help="small sizes (< 60 s): what the test runs"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--work", type=Path, help="folder for the data roots (default: a temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data roots")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure one size
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or QUICK["sizes"]
        args.episodes = QUICK["episodes"] if args.episodes == 50 else args.episodes
    if args.dramas:
        args.sizes = [args.dramas * args.episodes]
    args.sizes = args.sizes or DEFAULT_SIZES
    return args


def child_command(args: argparse.Namespace, total: int, work: Path, out: Path) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", str(total)]
    command += ["--episodes", str(args.episodes), "--sleep-ms", str(args.sleep_ms)]
    command += ["--workers", str(args.workers), "--fail-rate", str(args.fail_rate)]
    command += ["--executor", args.executor, "--work", str(work), "--json", str(out)]
    return command + (["--keep"] if args.keep else [])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.one is not None:  # a child: one size, figures to --json
        figures = measure_size(args, args.one, args.work)
        args.json.write_text(json.dumps(figures, indent=1))
        return figures
    work = args.work or Path(tempfile.mkdtemp(prefix="fsclap-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CI": "1"}  # no progress bars
    rows = []
    try:
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
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ns = [float(r["n"]) for r in rows]
    fits = {key: linear_fit(ns, [r[key] for r in rows]) for key in FITTED} if len(rows) > 1 else {}
    print(render(rows, fits))
    results = {
        "executor": args.executor,
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


if __name__ == "__main__":
    main()
