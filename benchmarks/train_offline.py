"""Offline-backbone training on this machine: throughput, peak memory, and FS-CLAP vs the plain CLAP
baseline (and ablation rows) at an equal budget on a generated style corpus.

    .venv/bin/python benchmarks/train_offline.py                      # FS-CLAP vs baseline, 400 clips
    .venv/bin/python benchmarks/train_offline.py --n 800 --epochs 12 --rows fsclap,clap,fu,se,hn,fu+se,fsclap-pair

The corpus comes from ``fsclap synth style`` (speaker-disjoint train/val/test splits, every caption
distinct). Each row trains from the same seed for the same number of epochs and batch size; the best
validation checkpoint is then scored on the test split with the project's evaluator (full gallery,
leak-free). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> --set overrides (Table 3 rows; "clap" is the all-off baseline)
ROWS = {
    "fsclap": [],
    "clap": ["fusion=false", "separation=false", "hn_loss=false"],
    "fu": ["separation=false", "hn_loss=false"],
    "se": ["fusion=false", "hn_loss=false"],
    "hn": ["fusion=false", "separation=false"],
    "fu+se": ["hn_loss=false"],
    "fsclap-noprosody": [
        "model.audio.prosody=false",
        "model.audio.normalise=false",
    ],  # log-mels only (no measured F0/voicing channels)
    "fsclap-pair": ["pair_loss=hard"],  # + pair loss on the hardest in-batch negatives (re-ranking)
    "fsclap-allpairs": ["pair_loss=all"],
}


def corpus(out: Path, n: int, seed: int) -> dict[str, Path]:
    from fsclap.manifest import ClipManifest
    from pipeline.synth.style_corpus import generate_style_corpus

    if not (out / "manifest.parquet").is_file():
        t = time.perf_counter()
        result = generate_style_corpus(out, n, seed=seed, workers=2)
        print(f"generated corpus: {result.summary()} ({time.perf_counter() - t:.0f} s)")
    manifest = ClipManifest.read(out / "manifest.parquet", validate_levels=False)
    paths = {}
    for split in ("train", "val", "test"):
        paths[split] = out / f"{split}.parquet"
        manifest.split(split).write(paths[split])
    return paths


def evaluate(run_dir: Path, manifest: Path) -> dict:
    from fsclap.manifest import ClipManifest
    from model.factory import load_checkpoint
    from model.metrics import evaluate_embeddings

    model = load_checkpoint(run_dir, "cpu")
    emb = model.embed_manifest(
        ClipManifest.read(manifest, validate_levels=False), batch_size=64, show_progress=False
    )
    return evaluate_embeddings(emb.audio, emb.text, emb.captions).to_json()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-bench" / "train_offline"
    )
    parser.add_argument(
        "--n", type=int, default=400, help="clips in the generated corpus (70%% train)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", default="fsclap,clap", help=f"comma list of {', '.join(ROWS)}")
    parser.add_argument(
        "--set", action="append", default=[], help="extra training override for every row"
    )
    args = parser.parse_args()

    from fsclap.log import setup_logging
    from model.train_config import load_train_config
    from model.training import train

    setup_logging("WARNING")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    args.out = args.out.resolve()  # split manifests store resolved audio paths
    paths = corpus(args.out / f"corpus_n{args.n}_s{args.seed}", args.n, args.seed)
    common = [
        f"epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        "grad_accum=1",
        f"seed={args.seed}",
        "workers=1",
        "log_every=5",
        *args.set,
    ]
    results = {}
    for row in args.rows.split(","):
        cfg = load_train_config(None, common + ROWS[row])
        run_dir = args.out / f"run_{row}_n{args.n}_e{args.epochs}_s{args.seed}"
        t = time.perf_counter()
        res = train(paths["train"], paths["val"], run_dir, cfg)
        seconds = time.perf_counter() - t
        rows = [json.loads(json.dumps(r)) for r in _read_csv(run_dir / "metrics.csv")]
        clips_per_s = sum(float(r["clips_per_s"]) for r in rows) / max(1, len(rows))
        test = evaluate(run_dir, paths["test"])
        results[row] = {
            "best_epoch": res.best_epoch,
            "val": res.best_metrics,
            "test": test,
            "seconds": round(seconds, 1),
            "train_clips_per_s": round(clips_per_s, 1),
        }
        print(
            f"[{row}] {seconds:.0f} s, {clips_per_s:.1f} train clips/s, best epoch {res.best_epoch}, "
            f"test N={test['n']}: a2t R@1 {test['a2t']['R@1']} R@5 {test['a2t']['R@5']} mAP@10 {test['a2t']['mAP@10']} | "
            f"t2a R@1 {test['t2a']['R@1']} R@5 {test['t2a']['R@5']} mAP@10 {test['t2a']['mAP@10']}",
            flush=True,
        )
        if "rerank_a2t_mAP@10" in res.best_metrics:
            v = res.best_metrics
            print(
                f"        val bi mAP@10 a2t {v['a2t_mAP@10']} t2a {v['t2a_mAP@10']} | pair re-rank (top {cfg.val_rerank_k}) "
                f"a2t {v['rerank_a2t_mAP@10']} t2a {v['rerank_t2a_mAP@10']}",
                flush=True,
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_test = next(iter(results.values()))["test"]["n"] if results else 0
    print(
        f"\npeak resident memory: {peak_mb:.0f} MB; chance on the test split (N={n_test}, distinct captions): "
        f"R@1 {100 / max(n_test, 1):.1f}, R@5 {500 / max(n_test, 1):.1f}"
    )
    print(
        f"{'row':16s} {'a2t R@1':>8s} {'a2t mAP':>8s} {'t2a R@1':>8s} {'t2a mAP':>8s} {'clips/s':>8s} {'time s':>7s}"
    )
    for row, r in results.items():
        print(
            f"{row:16s} {r['test']['a2t']['R@1']:8.1f} {r['test']['a2t']['mAP@10']:8.1f} {r['test']['t2a']['R@1']:8.1f} "
            f"{r['test']['t2a']['mAP@10']:8.1f} {r['train_clips_per_s']:8.1f} {r['seconds']:7.0f}"
        )
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


def _read_csv(path: Path) -> list[dict]:
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


if __name__ == "__main__":
    main()
