"""Voice invariance on the training family only: does augmentation / hard-negative batching help on
voices (and an engine-like shift) the model never heard?

    .venv/bin/python benchmarks/voice_invariance.py --n 1500 --epochs 15 --rows base,aug,attr,aug+attr

Corpus: ``fsclap synth style`` material from espeak-ng voices only (rows of any other engine are
dropped), speaker-disjoint train/val/test. Each row trains from the same seed with the same budget; its
best validation checkpoint is scored on two galleries:

* ``heldout``: the test split's voices (espeak-ng voices no row trained on);
* ``shifted`` / ``shifted_strong``: the same clips through a SoX chain that no augmentation uses — a formant change made the
  other way round (resampling ``speed``, then WSOLA ``pitch``/``tempo`` back to the original F0 and
  duration: different formants plus time-stretching artefacts) and ``overdrive`` distortion, with the
  active level restored — a stand-in for another engine's timbre. F0, tempo and loudness stay.

Prints R@1/R@10/mAP@10 both ways and per-attribute top-1 agreement (text->audio). Nothing here reads
the test family of voices. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NO_NORM = "model.audio.normalise=false"
ROWS = {  # every switch explicit, so that a row keeps its meaning when the defaults change
    "base": ["augment=false", "sampler=random", NO_NORM],
    "aug": ["augment=true", "sampler=random", NO_NORM],
    "attr": ["augment=false", "sampler=attribute", NO_NORM],
    "aug+attr": ["augment=true", "sampler=attribute", NO_NORM],
    "norm": [
        "augment=false",
        "sampler=random",
        "model.audio.normalise=true",
    ],  # per-clip mel centring + loudness
    "aug+norm": ["augment=true", "sampler=random", "model.audio.normalise=true"],
    "aug+attr+norm": ["augment=true", "sampler=attribute", "model.audio.normalise=true"],
}
ATTRS = ("gender", "pitch", "speed", "energy", "emotion")
# the shifted galleries: formant ratio of the SoX chain, alternating per clip
SHIFTS = {"shifted": (0.86, 1.16), "shifted_strong": (0.78, 1.28)}


def corpus(out: Path, n: int, seed: int) -> dict[str, Path]:
    from fsclap.manifest import ClipManifest
    from pipeline.synth.style_corpus import generate_style_corpus

    if not (out / "manifest.parquet").is_file():
        t = time.perf_counter()
        result = generate_style_corpus(out, n, seed=seed, workers=2, include_piper=False)
        print(f"generated corpus: {result.summary()} ({time.perf_counter() - t:.0f} s)")
    manifest = ClipManifest.read(out / "manifest.parquet", validate_levels=False)
    frame = manifest.frame
    if "engine" in frame.columns:
        frame = frame[frame["engine"] == "espeak"].reset_index(
            drop=True
        )  # the training family only
    manifest = ClipManifest(frame, manifest.source)
    paths = {}
    for split in ("train", "val", "test"):
        paths[split] = out / f"espeak_{split}.parquet"
        manifest.split(split).write(paths[split])
    return paths


def shift_engine(src: Path, dst: Path, ratio: float) -> None:
    """The ``shifted`` gallery's transform for one clip (see the module docstring)."""
    import soundfile as sf

    from fsclap.acoustics import active_rms_dbfs

    cents = -1200 * np.log2(ratio)
    subprocess.run(
        [
            "sox",
            str(src),
            str(dst),
            "speed",
            f"{ratio:.4f}",
            "pitch",
            f"{cents:.1f}",
            "tempo",
            "-s",
            f"{1 / ratio:.4f}",
            "overdrive",
            "4",
            "10",
            "rate",
            "16000",
        ],
        check=True,
        capture_output=True,
    )
    x, sr = sf.read(src, dtype="float32")
    y, _ = sf.read(dst, dtype="float32")
    y = y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))
    y *= 10 ** ((active_rms_dbfs(x, sr) - active_rms_dbfs(y, sr)) / 20)
    sf.write(dst, y, sr, subtype="FLOAT")


def shifted_manifest(test: Path, out: Path, name: str, ratios: tuple[float, float]) -> Path:
    from fsclap.manifest import ClipManifest

    target = out / f"espeak_test_{name}.parquet"
    if target.is_file():
        return target
    m = ClipManifest.read(test, validate_levels=False)
    folder = out / name
    folder.mkdir(exist_ok=True)
    frame = m.frame.copy()
    paths = []
    for i, row in enumerate(frame.itertuples()):
        dst = folder / f"{row.clip_id}.wav"
        if not dst.is_file():
            shift_engine(Path(row.audio_path), dst, ratios[i % 2])
        paths.append(str(dst))
    frame["audio_path"] = paths
    ClipManifest(frame, m.source).write(target)
    return target


def score(run_dir: Path, manifest: Path) -> dict:
    from model.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(run_dir, manifest, batch_size=64)
    return {**report.contract_json(), "t2a_top1": report.agreement("t2a")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fsclap-bench" / "voice_invariance",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="an existing style-corpus folder (default: generate)",
    )
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--rows", default="base,aug,attr,aug+attr", help=f"comma list of {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="extra training override for every row"
    )
    args = parser.parse_args()

    from fsclap.log import setup_logging
    from model.train_config import load_train_config
    from model.training import train

    setup_logging("WARNING")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = corpus((args.corpus or args.out / f"corpus_n{args.n}").resolve(), args.n, 0)
    galleries = {
        "heldout": paths["test"],
        **{
            name: shifted_manifest(paths["test"], paths["test"].parent, name, ratios)
            for name, ratios in SHIFTS.items()
        },
    }
    common = [
        f"epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        "grad_accum=1",
        f"seed={args.seed}",
        "workers=1",
        *args.set,
    ]
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for row in args.rows.split(","):
        name = f"{row}_s{args.seed}_e{args.epochs}{'_' + '_'.join(args.set) if args.set else ''}"
        run_dir = args.out / f"run_{name}"
        t = time.perf_counter()
        train(paths["train"], paths["val"], run_dir, load_train_config(None, common + ROWS[row]))
        results[name] = {g: score(run_dir, m) for g, m in galleries.items()}
        results[name]["seconds"] = round(time.perf_counter() - t)
        results_path.write_text(json.dumps(results, indent=2))
        print(f"[{name}] {results[name]['seconds']} s", flush=True)
    print_table(results)


def print_table(results: dict) -> None:
    head = (
        "| row | gallery | N | a2t R@1 / R@10 / mAP@10 | t2a R@1 / R@10 / mAP@10 | t2a top-1 "
        + " / ".join(ATTRS)
        + " |"
    )
    print(head + "\n|" + "---|" * 6)
    for name, res in results.items():
        for gallery in ("heldout", *SHIFTS):
            if gallery not in res:
                continue
            r = res[gallery]
            a, t = r["a2t"], r["t2a"]
            top = " / ".join(
                "-" if r["t2a_top1"].get(k) is None else f"{r['t2a_top1'][k]:.1f}" for k in ATTRS
            )
            print(
                f"| {name} | {gallery} | {r['n']} | {a['R@1']:.1f} / {a['R@10']:.1f} / {a['mAP@10']:.1f} | "
                f"{t['R@1']:.1f} / {t['R@10']:.1f} / {t['mAP@10']:.1f} | {top} |"
            )


if __name__ == "__main__":
    main()
