"""Mean measured value per intended level of a generated style corpus, per voice family and label mode.

The check that the labels are audible on each family: mean median F0 per gender and pitch level,
mean rate per speed level, mean level per energy level, and in relative mode the same against each
voice's own normal (semitones from its normal F0, ratio to its normal rate). Also the share of clips
whose measured relative pitch / rate falls on the side of the level the generator applied.

    .venv/bin/python benchmarks/style_families.py --family train --label-mode bands [--clips 150]
    .venv/bin/python benchmarks/style_families.py --manifest DIR/manifest.parquet   # an existing corpus
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from pipeline.synth.style_corpus import generate_style_corpus, level_means  # noqa: E402


def report(frame: pd.DataFrame) -> None:
    modes = ", ".join(sorted(frame["label_mode"].unique())) if "label_mode" in frame else "bands"
    engines = ", ".join(sorted(frame["engine"].unique()))
    print(
        f"{len(frame)} clips, {frame['speaker_id'].nunique()} voices ({engines}), label mode {modes}, "
        f"splits {frame['split'].value_counts().to_dict()}"
    )
    for row in level_means(frame).itertuples():
        print(f"  {row.attribute:<7} {row.gender:<7} {row.level:<7} {row.mean:8.2f} {row.unit}")
    if "measured_semitones" in frame and frame["measured_semitones"].notna().any():
        # midpoints between the applied ranges: pitch -1.6 / +1.6 st, rate ratio 0.865 / 1.16
        pitch = pd.cut(
            frame["measured_semitones"], [-99, -1.6, 1.6, 99], labels=["low", "normal", "high"]
        )
        speed = pd.cut(
            frame["measured_rate_ratio"], [0, 0.865, 1.16, 99], labels=["slow", "normal", "fast"]
        )
        for name, got, level in (("pitch", pitch, "pitch"), ("rate", speed, "speed")):
            share = 100 * (got.astype(str) == frame[level]).mean()
            print(f"  measured relative {name} on the applied level's side: {share:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="train", choices=["train", "test", "all"])
    parser.add_argument("--label-mode", default=None, choices=["bands", "relative"])
    parser.add_argument("--clips", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--manifest", type=Path, default=None, help="report on an existing corpus instead"
    )
    args = parser.parse_args()
    if args.manifest:
        report(pd.read_parquet(args.manifest))
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = generate_style_corpus(
            Path(tmp) / "style",
            n=args.clips,
            seed=args.seed,
            workers=args.workers,
            family=args.family,
            label_mode=args.label_mode,
        )
        print(result.summary())
        report(pd.read_parquet(result.manifest_path))


if __name__ == "__main__":
    main()
