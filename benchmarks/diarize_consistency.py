"""Diarization and speaker-consistency figures on generated short dramas (issue-3 generator).

    python benchmarks/diarize_consistency.py [--dramas 3] [--episodes 4] [--duration 60] [--seed 1]
                                             [--work DIR] [--funasr-tiny]

Prints:

1. DER (collar 0.25 s each side, overlap scored; pyannote.metrics via pipeline.scoring) of the
   offline diarizer on every generated episode: on the clean speech stem (perfect separation),
   on the mix with music and noise (the offline profile's default, no separation) and on the
   REPET-SIM separated mix; by speech-to-music ratio; speaker-count errors.
2. Real-time factor of each stage (diarize: VAD + window embeddings + clustering + segment
   embeddings + clip cutting; consistency: linking + eq. 4-5 + tables) through the Stage classes.
3. Calibration of the consistency threshold for resemblyzer: s̄ of clips that are one speaker
   and belong to their cluster's speaker ("clean") vs the others ("impure": mixed speakers or
   assigned to another speaker's cluster), keep/precision per threshold, best balanced accuracy,
   and a PNG of both distributions.
4. Calibration of the cross-episode linking threshold: adjusted Rand index of drama-level ids
   against the true speakers per threshold.
5. Consistency-filter time for 10k clips in one cluster (vectorised, float64) vs the direct loop.
6. (--funasr-tiny) the paper profile's FunASR path on tiny random-weight models: timing of the
   code path only (random weights: no quality figure is meaningful).

Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.audio import load_audio, write_audio
from fsclap.io import sha256_file
from fsclap.layout import DataRoot
from pipeline.consistency import Consistency, mean_similarity, mean_similarity_loop
from pipeline.diarize.offline_backend import OfflineDiarizer
from pipeline.diarize.stage import Diarize
from pipeline.scoring import diarization_error_corpus
from pipeline.speakers import centroids_from, link_speakers
from pipeline.stage import StageContext
from pipeline.synth.drama import speech_turns
from pipeline.tables import Episode

SR = 16000


def generate(work: Path, dramas: int, episodes: int, duration: float, seed: int) -> list[dict]:
    from pipeline.synth.drama import generate_dramas, load_truth

    start = time.perf_counter()
    result = generate_dramas(
        work / "gen", dramas=dramas, episodes=episodes, seed=seed, duration_s=duration, workers=2
    )
    print(
        f"generated {len(result.episodes)} episodes of {duration:.0f} s in {time.perf_counter() - start:.1f} s "
        f"({result.reused} reused) under {work / 'gen'}"
    )
    truths = load_truth(work / "gen")
    for t in truths:
        t["dir"] = work / "gen" / "truth" / t["drama_id"] / t["episode_id"]
    return truths


def reference(truth: dict) -> list[tuple[float, float, str]]:
    return speech_turns(truth["lines"])


def repet(audio: np.ndarray) -> np.ndarray:
    from pipeline.separate import RepetBackend

    return RepetBackend(SR)(audio[None])["vocals"][0]


def bench_der(truths: list[dict]) -> None:
    print(
        "\n== 1. offline diarizer DER (silero-vad + resemblyzer + agglomerative clustering, defaults) =="
    )
    diarizer = OfflineDiarizer()
    diarizer.diarize(np.zeros(SR, np.float32))  # load models outside the timing
    refs = {t["episode_id"]: reference(t) for t in truths}
    smr = {t["episode_id"]: t["speech_to_music_db"] for t in truths}
    for condition in ("speech", "mix", "repet"):
        hyp, counts, seconds, audio_s = {}, [], 0.0, 0.0
        for t in truths:
            audio = load_audio(
                t["dir"] / f"{'mix' if condition == 'repet' else condition}.flac", sample_rate=SR
            )[0]
            if condition == "repet":
                audio = repet(audio)
            start = time.perf_counter()
            segments = diarizer.diarize(audio)
            seconds += time.perf_counter() - start
            audio_s += len(audio) / SR
            hyp[t["episode_id"]] = [(s.start_s, s.end_s, s.speaker) for s in segments]
            counts.append(len({s.speaker for s in segments}) - len(t["speakers"]))
        score = diarization_error_corpus(refs, hyp, collar=0.25)
        by_smr = []
        for level in sorted(set(smr.values())):
            ids = [i for i in refs if smr[i] == level]
            by_smr.append(
                f"{level:.0f} dB: {100 * diarization_error_corpus({i: refs[i] for i in ids}, {i: hyp[i] for i in ids}).der:.1f}"
            )
        total = score.total
        print(
            f"{condition:<7} DER {100 * score.der:5.1f} %  (false alarm {100 * score.false_alarm / total:.1f}, "
            f"missed {100 * score.missed / total:.1f}, confusion {100 * score.confusion / total:.1f})  "
            f"by speech-to-music: {', '.join(by_smr)}  speaker-count error {counts}  RTF {seconds / audio_s:.3f}"
        )


def run_stages(truths: list[dict], root: Path) -> tuple[pd.DataFrame, dict]:
    """Diarize + consistency stages over the mixes (offline profile, no separation)."""
    context = StageContext(data_root=root)
    diarize, consistency = Diarize({}, context=context), Consistency({}, context=context)
    episodes = []
    for t in truths:
        vocals = root / "vocals" / t["drama_id"] / f"{t['episode_id']}.flac"
        audio, sr = load_audio(t["dir"] / "mix.flac")
        write_audio(vocals, audio, sr)
        episodes.append(
            Episode(
                episode_id=t["episode_id"],
                drama_id=t["drama_id"],
                source_url="gen",
                source_key=t["episode_id"],
                episode_index=t["episode_index"],
                vocals_path=context.rel(vocals),
                vocals_sha256=sha256_file(vocals),
            )
        )
    diarize.ensure_setup()
    timing = {"audio_s": sum(t["duration_s"] for t in truths)}
    start = time.perf_counter()
    episodes = [diarize.run(e) for e in episodes]
    timing["diarize"] = time.perf_counter() - start
    start = time.perf_counter()
    for e in episodes:
        consistency.run(e)
    timing["consistency"] = time.perf_counter() - start
    table = pd.read_parquet(DataRoot(root).segments_table)
    return table, timing


def truth_of_segments(table: pd.DataFrame, truths: list[dict]) -> pd.DataFrame:
    """Dominant true speaker and its share of each segment's speech."""
    lines = {t["episode_id"]: t["lines"] for t in truths}
    dominant, share = [], []
    for row in table.itertuples():
        overlap: dict[str, float] = {}
        for line in lines[row.episode_id]:
            o = min(row.end_s, line["end_s"]) - max(row.start_s, line["start_s"])
            if o > 0:
                overlap[line["speaker_id"]] = overlap.get(line["speaker_id"], 0.0) + o
        if overlap:
            best = max(overlap, key=overlap.get)
            dominant.append(best)
            share.append(overlap[best] / sum(overlap.values()))
        else:
            dominant.append(None)
            share.append(0.0)
    return table.assign(true_speaker=dominant, purity=share)


def bench_consistency_threshold(table: pd.DataFrame, out: Path) -> None:
    print(
        "\n== 3. consistency threshold for resemblyzer (s̄, eq. 5, within drama-level speakers) =="
    )
    scored = table[table["consistency"].notna()].copy()
    majority = scored.groupby("speaker_id")["true_speaker"].agg(lambda s: s.value_counts().index[0])
    scored["clean"] = (scored["purity"] >= 0.9) & (
        scored["true_speaker"] == scored["speaker_id"].map(majority)
    )
    clean, impure = (
        scored.loc[scored["clean"], "consistency"],
        scored.loc[~scored["clean"], "consistency"],
    )
    print(
        f"{len(scored)} scored clips: {len(clean)} clean (s̄ median {clean.median():.3f}, 5th pct "
        f"{clean.quantile(0.05):.3f}), {len(impure)} impure (median {impure.median():.3f}, 95th pct "
        f"{impure.quantile(0.95) if len(impure) else float('nan'):.3f})"
    )
    best = (0.0, None)
    for threshold in np.round(np.arange(0.60, 0.96, 0.01), 2):
        kept = scored["consistency"] >= threshold
        tpr = (kept & scored["clean"]).sum() / max(len(clean), 1)
        tnr = (~kept & ~scored["clean"]).sum() / max(len(impure), 1)
        balanced = (tpr + tnr) / 2
        if balanced > best[0]:
            best = (balanced, threshold)
        if threshold in (0.65, 0.75, 0.8, 0.82, 0.83, 0.84, 0.85, 0.86, 0.88, 0.9):
            precision = (kept & scored["clean"]).sum() / max(kept.sum(), 1)
            print(
                f"  threshold {threshold:.2f}: keeps {100 * kept.mean():5.1f} % of clips, clean kept {100 * tpr:5.1f} %, "
                f"impure removed {100 * tnr:5.1f} %, kept clips clean {100 * precision:5.1f} %"
            )
    print(f"best balanced accuracy {100 * best[0]:.1f} % at threshold {best[1]:.2f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        bins = np.linspace(0.5, 1.0, 51)
        ax.hist(clean, bins=bins, alpha=0.6, label=f"clean ({len(clean)})")
        ax.hist(impure, bins=bins, alpha=0.6, label=f"impure ({len(impure)})")
        ax.axvline(best[1], color="k", ls="--", label=f"best {best[1]:.2f}")
        ax.axvline(0.65, color="r", ls=":", label="paper (CAM++) 0.65")
        ax.set_xlabel("s̄ (eq. 5), resemblyzer"), ax.set_ylabel("clips"), ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / "consistency_resemblyzer.png"
        fig.savefig(path, dpi=120)
        print(f"plot: {path}")
    except ImportError:
        pass


def bench_linking(table: pd.DataFrame, root: Path) -> None:
    from sklearn.metrics import adjusted_rand_score

    print("\n== 4. cross-episode linking threshold (resemblyzer centroids, average linkage) ==")
    candidates = table[table["clip_path"].notna()]
    for threshold in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        predicted, truth = [], []
        for drama_id, rows in candidates.groupby("drama_id"):
            centroids, labels_true = [], []
            order = {
                e: i for i, e in enumerate(rows.sort_values("episode_index")["episode_id"].unique())
            }
            for episode_id, ep_rows in rows.groupby("episode_id"):
                vectors = np.stack(
                    [
                        np.load(root / p)[r]
                        for p, r in zip(ep_rows["embedding_path"], ep_rows["embedding_row"])
                    ]
                )
                cs = centroids_from(
                    episode_id,
                    ep_rows["episode_speaker"].tolist(),
                    vectors,
                    ep_rows["start_s"].tolist(),
                    episode_order=order[episode_id],
                )
                centroids += cs
                for c in cs:
                    mine = ep_rows[ep_rows["episode_speaker"] == c.label]
                    labels_true.append(mine["true_speaker"].value_counts().index[0])
            ids = link_speakers(centroids, threshold)
            predicted += [f"{drama_id}/{i}" for i in ids]
            truth += labels_true
        print(
            f"  threshold {threshold:.2f}: {len(set(predicted))} drama-level ids for {len(set(truth))} true speakers, "
            f"ARI {adjusted_rand_score(truth, predicted):.3f}"
        )


def bench_filter(sizes=(10000,), dims=(192, 256)) -> None:
    print("\n== 5. consistency filter time (one cluster, float64) ==")
    rng = np.random.default_rng(0)
    for n in sizes:
        for dim in dims:
            v = rng.standard_normal((n, dim)).astype(np.float32)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                mean_similarity(v)
                times.append(time.perf_counter() - start)
            print(f"  n={n} dim={dim}: vectorised {1000 * np.median(times):.1f} ms (median of 5)")
    v = rng.standard_normal((300, 192))
    start = time.perf_counter()
    mean_similarity_loop(v)
    loop = time.perf_counter() - start
    print(
        f"  direct loop: {loop:.2f} s for n=300 -> ~{loop * (10000 / 300) ** 2 / 60:.0f} min extrapolated to n=10000 (O(n^2))"
    )


def bench_funasr_tiny(truths: list[dict], work: Path) -> None:
    from fsclap.config import load_settings
    from fsclap.testing.tiny_models import write_funasr_model_dirs
    from pipeline.diarize.funasr_backend import FunasrDiarizer

    print("\n== 6. paper profile code path on tiny random-weight FunASR models (timing only) ==")
    models = work / "funasr_tiny"
    if not (models / "campplus").exists():
        write_funasr_model_dirs(models)
    diarizer = FunasrDiarizer(
        load_settings(overrides={"models_dir": str(models), "profile": "paper"})
    )
    start = time.perf_counter()
    _ = diarizer.model  # loads the four models
    print(f"  load: {time.perf_counter() - start:.1f} s")
    audio = load_audio(truths[0]["dir"] / "mix.flac", sample_rate=SR)[0]
    start = time.perf_counter()
    segments = diarizer.diarize(audio)
    seconds = time.perf_counter() - start
    print(
        f"  {len(audio) / SR:.0f} s episode -> {len(segments)} segments in {seconds:.1f} s (RTF {seconds / (len(audio) / SR):.2f}; "
        "tiny dimensions: says nothing about the real models' speed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dramas", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-bench-diarize"
    )
    parser.add_argument("--funasr-tiny", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    truths = generate(args.work, args.dramas, args.episodes, args.duration, args.seed)
    print(f"speakers per drama: {sorted({(t['drama_id'], len(t['speakers'])) for t in truths})}")
    bench_der(truths)

    print(
        "\n== 2. stage real-time factors (offline profile, mix as vocals, 1 thread pool worker) =="
    )
    root = Path(tempfile.mkdtemp(prefix="data-", dir=args.work))
    table, timing = run_stages(truths, root)
    print(
        f"  diarize: {timing['diarize']:.1f} s for {timing['audio_s']:.0f} s of audio (RTF {timing['diarize'] / timing['audio_s']:.3f})"
    )
    print(
        f"  consistency: {timing['consistency']:.2f} s (RTF {timing['consistency'] / timing['audio_s']:.4f})"
    )
    print(
        f"  segments: {len(table)}, candidates {table['clip_path'].notna().sum()}, kept {int(table['kept'].sum())}; "
        f"reasons {json.dumps(table['reason'].value_counts().to_dict())}"
    )
    table = truth_of_segments(table, truths)
    bench_consistency_threshold(table, args.work)
    bench_linking(table, root)
    bench_filter()
    if args.funasr_tiny:
        bench_funasr_tiny(truths, args.work)


if __name__ == "__main__":
    main()
