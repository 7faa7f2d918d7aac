"""How fast the generators are, and whether their labels are audible.

Prints: style-corpus clips per second (with ``--workers`` processes), seconds per 60-s drama episode
(one process, and the pool's throughput), the mean measured F0 / rate / level per intended level,
and the DER of the drama truth against itself shifted by 0.1 s (a sanity figure for the scorer).
Writes a spectrogram PNG of one episode to test-artifacts/.

    .venv/bin/python benchmarks/synth_speed.py [--clips 300] [--episodes 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from pipeline.scoring import diarization_error_corpus  # noqa: E402
from pipeline.synth import generate_dramas, generate_style_corpus, load_truth  # noqa: E402
from pipeline.synth.drama import build_episode, plan_dramas  # noqa: E402
from pipeline.synth.plots import plot_episode  # noqa: E402
from pipeline.synth.style_corpus import level_means  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # CPU cost per clip (this process + its espeak/sox children): what throughput an idle machine gives
        before = os.times()
        probe = generate_style_corpus(tmp / "probe", n=40, seed=args.seed + 1, workers=0)
        after = os.times()
        cpu = sum(
            getattr(after, f) - getattr(before, f)
            for f in ("user", "system", "children_user", "children_system")
        )
        print(
            f"style corpus, one process: {probe.clips} clips in {probe.seconds:.1f} s wall, {cpu / probe.clips * 1000:.0f} ms "
            f"CPU per clip (idle {os.cpu_count()}-core estimate: {os.cpu_count() * probe.clips / cpu * 60:.0f} clips/min)"
        )
        style = generate_style_corpus(
            tmp / "style", n=args.clips, seed=args.seed, workers=args.workers
        )
        print(
            f"style corpus: {style.clips} clips in {style.seconds:.1f} s = {style.clips_per_second:.1f} clips/s "
            f"= {60 * style.clips_per_second:.0f} clips/min ({args.workers} workers)"
        )
        frame = pd.read_parquet(style.manifest_path)
        print(
            f"  {frame['text'].nunique()} distinct sentences, {frame['caption'].nunique()} distinct captions, "
            f"{frame['speaker_id'].nunique()} voices, mean clip {frame['duration_s'].mean():.2f} s"
        )
        print("  mean measured value per intended level:")
        for row in level_means(frame).itertuples():
            print(
                f"    {row.attribute:<7} {row.gender:<7} {row.level:<7} {row.mean:7.1f} {row.unit}"
            )

        drama = plan_dramas(1, args.seed)[0]
        start, before = time.perf_counter(), os.times()
        build_episode(drama, 0, args.seed, 60.0, tmp / "single")
        single, after = time.perf_counter() - start, os.times()
        cpu = sum(
            getattr(after, f) - getattr(before, f)
            for f in ("user", "system", "children_user", "children_system")
        )
        print(f"drama: one 60-s episode in {single:.2f} s wall, {cpu:.2f} s CPU (one process)")
        result = generate_dramas(
            tmp / "drama",
            dramas=1,
            episodes=args.episodes,
            seed=args.seed,
            duration_s=60.0,
            workers=args.workers,
        )
        per_episode = result.seconds / len(result.episodes)
        print(
            f"drama: {len(result.episodes)} x 60-s episodes in {result.seconds:.1f} s = {per_episode:.2f} s per "
            f"episode with {args.workers} workers"
        )
        truth = load_truth(tmp / "drama")
        reference = {
            t["episode_id"]: [(ln["start_s"], ln["end_s"], ln["speaker_id"]) for ln in t["lines"]]
            for t in truth
        }
        shifted = {k: [(s + 0.1, e + 0.1, spk) for s, e, spk in v] for k, v in reference.items()}
        for collar in (0.0, 0.25):
            der = diarization_error_corpus(
                reference,
                shifted,
                collar=collar,
                durations={t["episode_id"]: t["duration_s"] for t in truth},
            )
            print(f"  DER of the truth shifted by 0.1 s, collar {collar}: {100 * der.der:.1f} %")
        lines = sum(len(t["lines"]) for t in truth)
        overlaps = sum(ln["overlaps_previous"] for t in truth for ln in t["lines"])
        print(f"  {lines} lines, {overlaps} overlapping the previous one")
        png = plot_episode(
            tmp / "drama",
            truth[-1],
            ROOT / "test-artifacts" / "synth_drama_benchmark.png",
            seconds=30,
        )
        print(f"  spectrogram: {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
