"""Offline diarization on generated dramas over music, per voice family: DER, speech detection,
speaker counts and the purity of the drama-level speaker ids.

    python benchmarks/diarization.py [--family train|test|all] [--dramas 3] [--episodes 2] [--seconds 60]
                                     [--seed 7] [--speakers 3-6] [--restyle 0.3] [--quick] [--json OUT]
    python benchmarks/diarization.py --folder DIR [--json OUT]   # dramas generated before, as they are

Dramas come from ``fsclap synth drama`` with the given voice family (``train``: espeak-ng, what
fsclap is tuned on; ``test``: the held-out neural voices, for final reporting only), 3-6 speakers,
music at 5/10/15 dB speech-to-music, every line in its own emotional style and ``--restyle`` of the
lines pitch-shifted afterwards (formants move). Each episode's mix (no separation: the offline
profile's default) goes through :class:`~pipeline.diarize.offline_backend.OfflineDiarizer`.

Prints, per episode and overall: DER (pyannote.metrics via pipeline.scoring, 0.25 s collar each
side, overlap scored), missed speech, false alarm and confusion (percent of scored speech),
estimated vs true speaker count; then the drama-level ids that
:func:`pipeline.speakers.link_speakers` makes from the episodes' speakers, with each id's purity
(share of its speech that is its majority true speaker) and each true speaker's coverage (share
of its speech under its main id). ``run(...)`` returns the same figures as a dict (the lead's
generalization benchmark calls it). ``--quick``: 1 drama x 2 episodes x 40 s (about a minute).
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

SR = 16000
COLLAR_S = 0.25


def episode_reference(truth: dict) -> list[tuple[float, float, str]]:
    """The speech turns: each line without its pauses of 0.3 s or more (``drama.speech_turns``)."""
    from pipeline.synth.drama import speech_turns

    return speech_turns(truth["lines"])


def whole_line_reference(truth: dict) -> list[tuple[float, float, str]]:
    """Each line as one turn, its pauses counted as speech (the reference before pauses were stored)."""
    return [(line["start_s"], line["end_s"], line["speaker_id"]) for line in truth["lines"]]


def true_speaker_time(truth: dict, start_s: float, end_s: float) -> dict[str, float]:
    """Seconds of each true speaker inside ``[start_s, end_s]``."""
    out: dict[str, float] = {}
    for line in truth["lines"]:
        overlap = min(end_s, line["end_s"]) - max(start_s, line["start_s"])
        if overlap > 0:
            out[line["speaker_id"]] = out.get(line["speaker_id"], 0.0) + overlap
    return out


def diarize_episodes(truths: list[dict], root: Path) -> tuple[list[dict], pd.DataFrame, float]:
    """Diarize every episode's mix; per-episode scores and one row per segment (with its embedding)."""
    from fsclap.audio import load_audio
    from pipeline.diarize.offline_backend import OfflineDiarizer
    from pipeline.scoring import diarization_error
    from pipeline.segments import segment_reasons

    diarizer = OfflineDiarizer()
    embedder = diarizer.embedder()
    rows, segments_rows, seconds = [], [], 0.0
    for truth in truths:
        audio = load_audio(root / truth["stems"]["mix"], sample_rate=SR)[0]
        start = time.perf_counter()
        segments = diarizer.diarize(audio)
        seconds += time.perf_counter() - start
        hyp = [(s.start_s, s.end_s, s.speaker) for s in segments]
        score = diarization_error(
            episode_reference(truth), hyp, collar=COLLAR_S, duration_s=truth["duration_s"]
        )
        total = score.total or float("nan")
        whole_lines = diarization_error(
            whole_line_reference(truth), hyp, collar=COLLAR_S, duration_s=truth["duration_s"]
        )
        rows.append(
            {
                "der_whole_lines": 100 * whole_lines.der,
                "episode_id": truth["episode_id"],
                "drama_id": truth["drama_id"],
                "speech_to_music_db": truth["speech_to_music_db"],
                "der": 100 * score.der,
                "missed": 100 * score.missed / total,
                "false_alarm": 100 * score.false_alarm / total,
                "confusion": 100 * score.confusion / total,
                "speakers_true": len({line["speaker_id"] for line in truth["lines"]}),
                "speakers_found": len({s.speaker for s in segments}),
                "_score": score,
            }
        )
        reasons = segment_reasons(segments, diarizer.segmentation.min_s)
        keep = [i for i, r in enumerate(reasons) if r is None]
        vectors = embedder.embed(
            [audio[int(segments[i].start_s * SR) : int(segments[i].end_s * SR)] for i in keep]
        )
        for i, vector in zip(keep, vectors):
            seg = segments[i]
            segments_rows.append(
                {
                    "drama_id": truth["drama_id"],
                    "episode_id": truth["episode_id"],
                    "episode_index": truth["episode_index"],
                    "label": seg.speaker,
                    "start_s": seg.start_s,
                    "end_s": seg.end_s,
                    "vector": vector,
                    "truth": true_speaker_time(truth, seg.start_s, seg.end_s),
                }
            )
    return rows, pd.DataFrame(segments_rows), seconds


def drama_level_purity(segments: pd.DataFrame) -> dict:
    """Link episode speakers into drama-level ids (as the consistency stage does) and score them."""
    from pipeline.speakers import LINK_THRESHOLDS, centroids_from, link_speakers, speaker_purity

    if segments.empty:
        return {
            "ids": 0,
            "true_speakers": 0,
            "purity": float("nan"),
            "coverage": float("nan"),
            "table": [],
        }
    assigned, truths = [], []
    for drama_id, rows in segments.groupby("drama_id", sort=True):
        order = {e: i for i, e in enumerate(sorted(rows["episode_id"].unique()))}
        centroids, keys = [], []
        for episode_id, ep in rows.groupby("episode_id", sort=True):
            cs = centroids_from(
                episode_id,
                ep["label"].tolist(),
                np.stack(ep["vector"].to_list()),
                ep["start_s"].tolist(),
                episode_order=order[episode_id],
            )
            centroids += cs
            keys += [(episode_id, c.label) for c in cs]
        ids = dict(zip(keys, link_speakers(centroids, LINK_THRESHOLDS["resemblyzer"])))
        for row in rows.itertuples():
            assigned.append(f"{drama_id}/id{ids[(row.episode_id, row.label)]}")
            truths.append(row.truth)
    table, summary = speaker_purity(assigned, truths)
    return {**summary, "table": table.to_dict(orient="records")}


def run(
    family: str = "train",
    n_dramas: int = 3,
    episodes: int = 2,
    seconds: float = 60.0,
    seed: int = 7,
    quick: bool = False,
    speakers: tuple[int, int] = (3, 6),
    restyle: float = 0.3,
    work: str | Path | None = None,
) -> dict:
    """Generate (or reuse) the dramas, diarize them and return the figures (percentages)."""
    from pipeline.synth.drama import generate_dramas

    if quick:
        n_dramas, episodes, seconds = 1, 2, 40.0
    work = Path(work) if work else Path(tempfile.gettempdir()) / "fsclap-bench-diarization"
    out = (
        work
        / f"{family}-seed{seed}-{n_dramas}x{episodes}x{seconds:g}s-spk{speakers[0]}-{speakers[1]}-restyle{restyle:g}"
    )
    start = time.perf_counter()
    generate_dramas(
        out,
        dramas=n_dramas,
        episodes=episodes,
        seed=seed,
        duration_s=seconds,
        workers=2,
        family=family,
        speakers=speakers,
        restyle=restyle,
    )
    generate_s = time.perf_counter() - start
    result = evaluate(out)
    result.update(
        {
            "family": family,
            "dramas": n_dramas,
            "episodes_per_drama": episodes,
            "seconds": seconds,
            "seed": seed,
            "speakers": list(speakers),
            "restyle": restyle,
            "generate_s": generate_s,
        }
    )
    return result


def evaluate(folder: str | Path) -> dict:
    """Diarize the dramas already generated in ``folder`` and return the figures (percentages)."""
    from pipeline.synth.drama import load_truth

    out = Path(folder)
    truths = load_truth(out)
    rows, segments, diarize_s = diarize_episodes(truths, out)
    scores = [r.pop("_score") for r in rows]
    total = sum(s.total for s in scores)
    audio_s = sum(t["duration_s"] for t in truths)
    counts = [r["speakers_true"] for r in rows]
    # what run() knows from its arguments, read back from the folder's truth (name: <family>-seed...)
    return {
        "family": out.name.split("-")[0],
        "dramas": len({t["drama_id"] for t in truths}),
        "episodes_per_drama": len(truths) // max(len({t["drama_id"] for t in truths}), 1),
        "seconds": max(t["duration_s"] for t in truths),
        "seed": truths[0].get("generator", {}).get("seed"),
        "speakers": [min(counts), max(counts)],
        "restyle": float("nan"),
        "folder": str(out),
        "episodes": rows,
        "der_mean": float(np.mean([r["der"] for r in rows])),
        # the same hypotheses against lines whose pauses count as speech (the earlier reference)
        "der_mean_whole_lines": float(np.mean([r["der_whole_lines"] for r in rows])),
        "der_pooled": 100 * sum(s.false_alarm + s.missed + s.confusion for s in scores) / total,
        "missed": 100 * sum(s.missed for s in scores) / total,
        "false_alarm": 100 * sum(s.false_alarm for s in scores) / total,
        "confusion": 100 * sum(s.confusion for s in scores) / total,
        "count_exact": float(np.mean([r["speakers_found"] == r["speakers_true"] for r in rows])),
        "count_error_mean": float(
            np.mean([r["speakers_found"] - r["speakers_true"] for r in rows])
        ),
        "purity": drama_level_purity(segments),
        "diarize_rtf": diarize_s / audio_s,
    }


def report(result: dict) -> None:
    print(
        f"== offline diarization, {result['family']} family: {len(result['episodes'])} episodes of "
        f"{result['seconds']:g} s, {result['speakers'][0]}-{result['speakers'][1]} speakers, restyle "
        f"{result['restyle']:g}, seed {result['seed']} ({result['folder']}) =="
    )
    print(
        f"{'episode':<16} {'S/M dB':>6} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6}  speakers found/true"
    )
    for r in result["episodes"]:
        print(
            f"{r['episode_id']:<16} {r['speech_to_music_db']:>6.0f} {r['der']:>6.1f} {r['missed']:>6.1f} "
            f"{r['false_alarm']:>6.1f} {r['confusion']:>6.1f}  {r['speakers_found']}/{r['speakers_true']}"
        )
    print(
        f"mean DER {result['der_mean']:.1f} % (pooled {result['der_pooled']:.1f} %: missed {result['missed']:.1f}, "
        f"false alarm {result['false_alarm']:.1f}, confusion {result['confusion']:.1f}); speaker count exact in "
        f"{100 * result['count_exact']:.0f} % of episodes, mean error {result['count_error_mean']:+.2f}; "
        f"diarize RTF {result['diarize_rtf']:.3f}; mean DER with each line's pauses counted as "
        f"speech {result['der_mean_whole_lines']:.1f} %"
    )
    p = result["purity"]
    print(
        f"drama-level ids: {p['ids']} for {p['true_speakers']} true speakers; purity {100 * p['purity']:.1f} %, "
        f"coverage {100 * p['coverage']:.1f} % (speech-weighted)"
    )
    for row in p["table"]:
        print(
            f"  {row['speaker_id']:<14} {row['seconds']:6.1f} s  majority {row['majority']:<14} purity {100 * row['purity']:5.1f} %"
        )


def main() -> None:
    from pipeline.synth.drama import parse_speaker_range

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="train", choices=("train", "test", "all"))
    parser.add_argument("--dramas", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speakers", default="3-6")
    parser.add_argument("--restyle", type=float, default=0.3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--folder", type=Path, default=None, help="score dramas already generated there instead"
    )
    args = parser.parse_args()
    if args.folder:
        result = evaluate(args.folder)
    else:
        result = run(
            args.family,
            args.dramas,
            args.episodes,
            args.seconds,
            args.seed,
            args.quick,
            parse_speaker_range(args.speakers),
            args.restyle,
            args.work,
        )
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
