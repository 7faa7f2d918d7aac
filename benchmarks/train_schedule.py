"""The training schedule at every corpus size: what preset ``auto`` derives (batch, epochs, steps, CPU
cost) and, optionally, derived defaults vs the paper's settings trained on espeak-ng speech.

    .venv/bin/python benchmarks/train_schedule.py                          # the derived schedules only (instant)
    nice -n 10 .venv/bin/python benchmarks/train_schedule.py --train 300   # + train auto vs paper on 300 clips

Training uses the train family only: a ``fsclap synth style`` corpus (speaker-disjoint splits) of which
only espeak-ng rows are kept; the best validation epoch is scored on the test split's (unseen)
espeak-ng voices with the project's evaluator (full gallery, leak-free). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
CPU_CLIPS_PER_S = 27.0  # offline backbone, 2 CPU cores, measured by benchmarks/train_offline.py


def schedule_table() -> str:
    from model.train_config import load_train_config, resolve_schedule

    lines = [
        "| train clips | preset | batch x accum | epochs | steps | warm-up | clip passes | training time at 27 clips/s (no validation) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in SIZES:
        for preset in ("auto", "paper"):
            s = resolve_schedule(load_train_config(preset), n)
            passes = (
                s.epochs * (n // s.batch_size) * s.batch_size
            )  # full micro-batches only (drop_last)
            lines.append(
                f"| {n:,} | {preset} | {s.batch_size} x {s.grad_accum} | {s.epochs} | {s.total_steps:,} | "
                f"{s.warmup_steps} | {passes:,} | {passes / CPU_CLIPS_PER_S / 60:.0f} min |"
            )
    return "\n".join(lines)


def espeak_splits(corpus: Path, n_corpus: int, n_train: int) -> dict[str, Path]:
    import pandas as pd

    from pipeline.synth.style_corpus import generate_style_corpus

    if not (corpus / "manifest.parquet").is_file():
        generate_style_corpus(corpus, n_corpus, seed=0, workers=2)
    frame = pd.read_parquet(corpus / "manifest.parquet")
    frame = frame[frame["engine"] == "espeak"].copy()  # the train family only
    frame["audio_path"] = [
        p if str(p).startswith("/") else str(corpus / p) for p in frame["audio_path"]
    ]
    parts = {
        "train": frame[frame["split"] == "train"].sample(frac=1.0, random_state=0).head(n_train),
        "val": frame[frame["split"] == "val"],
        "test": frame[frame["split"] == "test"],
    }
    paths = {}
    for split, part in parts.items():
        paths[split] = corpus / f"espeak_{split}_{n_train}.parquet"
        part.to_parquet(paths[split])
    return paths


def train_and_score(paths: dict[str, Path], run_dir: Path, sets: list[str]) -> dict:
    from fsclap.manifest import ClipManifest
    from model.factory import load_checkpoint
    from model.metrics import evaluate_embeddings
    from model.train_config import load_train_config
    from model.training import Trainer

    read = lambda split: ClipManifest.read(paths[split], validate_levels=False)  # noqa: E731
    start = time.perf_counter()
    result = Trainer(load_train_config(None, sets), read("train"), read("val"), run_dir).fit()
    seconds = time.perf_counter() - start
    model = load_checkpoint(run_dir, "cpu")
    emb = model.embed_manifest(read("test"), batch_size=64, show_progress=False)
    test = evaluate_embeddings(emb.audio, emb.text, emb.captions).to_json()
    return {
        "schedule": result.schedule.describe(),
        "best_epoch": result.best_epoch,
        "train_s": round(seconds),
        "test": test,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train", type=int, nargs="*", default=[], help="train clips to train at (e.g. 300 1000)"
    )
    parser.add_argument("--presets", default="paper,auto")
    parser.add_argument(
        "--corpus-size", type=int, default=1500, help="clips generated (70%% train)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-bench" / "train_schedule"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="extra training override for every run"
    )
    args = parser.parse_args()
    print(schedule_table())
    if not args.train:
        return
    from fsclap.log import setup_logging

    setup_logging()
    rows = []
    for n in args.train:
        paths = espeak_splits(args.out / f"corpus{args.corpus_size}", args.corpus_size, n)
        for preset in args.presets.split(","):
            out = train_and_score(
                paths, args.out / f"run_{preset}_n{n}", [f"preset={preset}", *args.set]
            )
            print(json.dumps(out))
            t2a, a2t = out["test"]["t2a"], out["test"]["a2t"]
            rows.append(
                f"| {n} | {preset} | {out['schedule'].split('-> ')[1].split(' [')[0]} | {out['train_s'] / 60:.1f} | "
                f"{t2a['R@1']:.1f} / {t2a['R@5']:.1f} / {t2a['R@10']:.1f} / {t2a['mAP@10']:.1f} | "
                f"{a2t['R@1']:.1f} / {a2t['R@5']:.1f} / {a2t['R@10']:.1f} / {a2t['mAP@10']:.1f} | {out['test']['n']} |"
            )
    print(
        "| train clips | preset | schedule | train min | t2a R@1/5/10/mAP@10 | a2t R@1/5/10/mAP@10 | test N |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
