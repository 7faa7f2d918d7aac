"""``fsclap demo`` / ``make demo``: the whole system end to end on the offline profile.

generate short dramas -> serve them on loopback HTTP -> the ``build-corpus`` flow (acquire, extract,
separate, diarize, consistency, caption, publish) -> the ``train-fsclap`` flow on the published
dataset -> the ``evaluate-fsclap`` flow on its test split (leak-free) -> index every clip -> example
searches. The flows run in this process (Prefect's ephemeral mode, quiet:
:func:`~flows.runtime.prepare_local_prefect`). Each step prints what it did and its time.
Re-running resumes: finished work is reused.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flows.build_corpus import build_corpus
from flows.evaluate import evaluate_fsclap
from flows.params import settings_overrides
from flows.runtime import prepare_local_prefect
from flows.train import train_fsclap
from fsclap.config import Settings, load_settings
from fsclap.errors import FsclapError
from fsclap.layout import DataRoot
from fsclap.manifest import ClipManifest
from model.retrieval import Searcher, build_index
from pipeline.synth import generate_dramas, serve_directory, write_served_sources

DEMO_DRAMAS = 6
DEMO_EPISODES = 4
DEMO_EPISODE_SECONDS = 60.0
DEMO_TRAIN = ["epochs=15", "batch_size=32", "grad_accum=1", "freeze_text=true", "workers=0"]
DEMO_QUERIES = (
    "A woman with a high-pitched voice speaking quickly.",
    "A man speaking slowly in a low, deep voice.",
    "A loud, energetic male voice.",
)


def _say(msg: str = "") -> None:
    print(msg, flush=True)


class DemoRun:
    """Runs named steps, timing each and collecting a summary table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def step(self, name: str, fn: Callable[[], str]):
        _say(f"\n== {name}")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, result.splitlines()[0] if result else ""))
        _say("\n".join("   " + line for line in result.splitlines()))
        _say(f"   ({seconds:.1f} s)")

    def summary(self) -> None:
        _say("\n== summary")
        width = max(len(n) for n, _, _ in self.rows)
        for name, seconds, first_line in self.rows:
            _say(f"   {name:<{width}}  {seconds:7.1f} s  {first_line[:90]}")
        _say(f"   {'total':<{width}}  {sum(s for _, s, _ in self.rows):7.1f} s")


def check_system_tools() -> str:
    missing = [
        tool for tool in ("ffmpeg", "ffprobe", "espeak-ng", "sox") if shutil.which(tool) is None
    ]
    if missing:
        raise FsclapError(
            f"missing system tools: {', '.join(missing)} (run 'make setup' as root or apt-get install them)"
        )
    return "ffmpeg, ffprobe, espeak-ng, sox found"


def run_demo(settings: Settings, out: Path, seed: int = 0) -> None:
    prepare_local_prefect()  # corpus build, training and evaluation run as the Prefect flows, in process

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data"
    settings = load_settings(
        overrides={
            **settings.model_dump(mode="json", exclude_none=True),
            "data_root": str(data_root),
            "profile": "offline",
        }
    )
    _say(f"fsclap demo: profile=offline device={settings.resolved_device()} out={out} seed={seed}")
    run = DemoRun()
    state: dict = {}
    run.step("system tools", check_system_tools)

    def generate() -> str:
        result = generate_dramas(
            out / "dramas",
            dramas=DEMO_DRAMAS,
            episodes=DEMO_EPISODES,
            seed=seed,
            duration_s=DEMO_EPISODE_SECONDS,
            workers=max(settings.workers, 1),
        )
        state["dramas"] = result
        return f"generated {DEMO_DRAMAS} dramas x {DEMO_EPISODES} episodes: {result.summary()}"

    run.step("generate short dramas (MP4 + ground truth)", generate)

    with serve_directory(out / "dramas") as base_url:
        sources = write_served_sources(out / "dramas", base_url, out / "sources.http.yaml")
        run.step(
            f"corpus build from {base_url} (offline profile)",
            lambda: _corpus_build(settings, sources, state),
        )

    run.step("train FS-CLAP on the published dataset", lambda: _train(settings, out, state))
    run.step(
        "evaluate on the test split (leak-free, full gallery)",
        lambda: _evaluate(settings, out, state),
    )
    run.step("index every clip", lambda: _index(settings, out, state))
    run.step("example searches", lambda: _searches(settings, out, state))
    run.summary()
    _say(
        f"\nEverything is under {out}: data/manifests, data/datasets/{state.get('version', '?')}, "
        f"runs/fsclap-{state.get('version', '?')}, eval/, index/."
    )


def _corpus_build(settings: Settings, sources: Path, state: dict) -> str:

    summary = build_corpus(sources=sources, overrides=settings_overrides(settings))
    try:
        state["dataset"] = DataRoot(settings.data_root).datasets.latest_folder()
    except FsclapError:
        raise FsclapError(
            "the corpus build published no dataset (see the failures above)"
        ) from None
    state["version"] = state["dataset"].name
    counts = {
        s: len(pd.read_parquet(state["dataset"] / f"{s}.parquet")) for s in ("train", "val", "test")
    }
    return (
        summary.render()
        + f"\ndataset {state['version']}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def _train(settings: Settings, out: Path, state: dict) -> str:

    state["run"] = DataRoot(out).run_dir(
        f"fsclap-{state['version']}"
    )  # one run per dataset version
    result = train_fsclap(
        dataset=state["dataset"],
        run_dir=state["run"],
        train_overrides=DEMO_TRAIN + [f"seed={settings.seed}"],
        overrides=settings_overrides(settings),
    )
    m = result["best_metrics"]
    return (
        f"best epoch {result['best_epoch']}/{result['epochs']} on {m.get('n', '?')} val clips: "
        f"a2t R@1 {m.get('a2t_R@1', float('nan')):.1f} mAP@10 {m.get('a2t_mAP@10', float('nan')):.1f} | "
        f"t2a R@1 {m.get('t2a_R@1', float('nan')):.1f} mAP@10 {m.get('t2a_mAP@10', float('nan')):.1f}"
        f"\ncurves: {state['run'] / 'curves.png'}"
    )


def _evaluate(settings: Settings, out: Path, state: dict) -> str:

    result = evaluate_fsclap(
        checkpoint=state["run"],
        dataset=state["dataset"],
        split="test",
        out_dir=out / "eval",
        overrides=settings_overrides(settings),
    )
    return result["table"] + f"\nmetrics: {result['metrics']}  embedding map: {result['plot']}"


def _index(settings: Settings, out: Path, state: dict) -> str:
    state["index"] = out / "index" / state["version"]
    index, added, _ = build_index(
        state["run"], DataRoot(settings.data_root).clips_table, state["index"], settings
    )
    return f"{len(index)} clips indexed ({added} added), {index.meta['kind']} search -> {state['index']}"


def _searches(settings: Settings, out: Path, state: dict) -> str:
    searcher = Searcher(state["index"], device=settings.resolved_device())
    lines = []
    for query in DEMO_QUERIES:
        lines.append(f'fsclap search "{query}"')
        for r in searcher.search_text(query, k=3):
            lines.append(f"  {r.rank}. {r.score:+.3f}  {r.clip_id}  {r.caption}")
    example = ClipManifest.read(state["dataset"] / "test.parquet").frame.iloc[
        0
    ]  # resolves relative paths
    similar, captions = searcher.search_audio(example["audio_path"], k=3)
    lines.append(
        f"fsclap search {Path(example['audio_path']).name}   (an audio query; its own caption: {example['caption']})"
    )
    for r in similar:
        lines.append(f"  {r.rank}. {r.score:+.3f}  {r.clip_id}  {r.caption}")
    lines.append("  best-matching descriptions: " + " | ".join(c for c, _ in captions))
    return "\n".join(lines)
