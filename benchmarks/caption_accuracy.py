"""Caption attribute accuracy on voices whose speed is set relative to their own normal rate.

For every voice of ``--family`` (default ``train`` = espeak-ng; ``test`` = the held-out neural
voices, for final reporting only) it synthesises ``--clips`` sentences, each at a tempo of 0.75 /
1.0 / 1.33 × the voice's own rate (slow / normal / fast, ±3 % jitter) and a random pitch shift of
±``--max-shift`` semitones, then runs the captioner's measurement and binning under three
transcript conditions: the clip's own text, no text, and the text of another clip (mismatched).
It prints, per condition:

* speed level accuracy and Kendall tau against the applied level, with speaker ids (the default
  rule: speaker-relative, fixed ±0.14 log-rate thresholds), next to the earlier rules (speech rate
  over the whole span, binned against the corpus group / the speaker's tertiles);
* gender accuracy, "unknown" share and mean confidence without speaker ids (per clip) and with them,
  and the F0-only model beside it.

``--family train-ja`` runs espeak-ng's Japanese voice on kana sentences (transcripts in morae).

``--style`` also captions a generated style corpus (``generate_style_corpus(family=...)``) and
scores gender / pitch / speed / energy against its intended levels, with the throughput of
``fsclap caption``.

    .venv/bin/python benchmarks/caption_accuracy.py [--family train] [--clips 12] [--workers 2] [--style]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from fsclap.audio import write_audio  # noqa: E402
from pipeline.attributes import BinningConfig, bin_attributes  # noqa: E402
from pipeline.caption import measure_frame  # noqa: E402
from pipeline.synth import sentences as sentence_bank  # noqa: E402
from pipeline.synth.voices import (
    ENGINE_SAMPLE_RATE,
    PITCH_RANGES,
    Controls,
    synthesize,
    voice_catalogue,
)  # noqa: E402

TEMPOS = {"slow": 0.75, "normal": 1.0, "fast": 1.33}
SPEED_ORDER = {"slow": 0, "normal": 1, "fast": 2}
SPEED_RULES = {
    "speaker, articulation rate, x1.15 (default)": (BinningConfig(), None),
    "speaker, speech rate, x1.15": (BinningConfig(), "speech_rate"),
    "corpus group, speech rate (old default)": (
        BinningConfig(speed_reference="group"),
        "speech_rate",
    ),
}


# espeak-ng's Japanese voice with four variants: the train family's check of kana transcripts (morae)
ESPEAK_JAPANESE = (("f3", "female"), ("m3", "male"), ("f1", "female"), ("m1", "male"))


def family_voices(family: str) -> list:
    if family == "train-ja":
        from pipeline.synth.voices import Voice

        return [
            Voice(f"espeak-ja-{variant}", "espeak", gender, variant, "ja")
            for variant, gender in ESPEAK_JAPANESE
        ]
    try:
        return voice_catalogue(family=family)
    except (
        TypeError
    ):  # a catalogue without families: espeak is the train family, Piper the test one
        voices = voice_catalogue()
        return [
            v for v in voices if (v.engine == "espeak") == (family == "train") or family == "all"
        ]


def sentences_for(voice, rng: random.Random, n: int) -> list[str]:
    language = getattr(voice, "sentence_language", "en")
    try:
        return sentence_bank.distinct_sentences(rng, n, language)
    except TypeError:  # a bank without languages
        return sentence_bank.distinct_sentences(rng, n)


def relative_tempo_corpus(
    out: Path, family: str, clips: int, max_shift: float, seed: int
) -> pd.DataFrame:
    """Clips whose speed level is applied relative to each voice's own rate; the truth table."""
    rng = random.Random(seed)
    rows = []
    for voice in family_voices(family):
        texts = sentences_for(voice, rng, clips)
        for i, text in enumerate(texts):
            level = list(TEMPOS)[i % 3]
            controls = Controls(
                semitones=rng.uniform(-max_shift, max_shift),
                tempo=TEMPOS[level] * rng.uniform(0.97, 1.03),
                pitch_range=rng.choice(PITCH_RANGES),
            )
            audio, _ = synthesize(voice, text, controls)
            path = write_audio(
                out / f"{voice.voice_id}-{i:03d}.wav", audio, ENGINE_SAMPLE_RATE, subtype="PCM_16"
            )
            rows.append(
                {
                    "clip_id": f"{voice.voice_id}-{i:03d}",
                    "audio_path": str(path),
                    "speaker_id": voice.voice_id,
                    "true_gender": voice.gender,
                    "true_speed": level,
                    "language": getattr(voice, "sentence_language", "en"),
                    "own_text": text,
                }
            )
    truth = pd.DataFrame(rows)
    # the mismatched condition: each clip gets the text of another clip in the same language
    truth["other_text"] = truth.groupby("language")["own_text"].transform(
        lambda t: np.roll(t.to_numpy(), 7)
    )
    return truth


def speed_scores(
    truth: pd.DataFrame,
    measured: pd.DataFrame,
    config: BinningConfig,
    column: str | None,
    with_speakers: bool = True,
) -> tuple[float, float]:
    frame = measured.copy()
    if column is not None:  # bin another rate column by dropping the articulation rate
        frame = frame.drop(columns=["articulation_rate"]).assign(speech_rate=frame[column])
    if not with_speakers:
        frame = frame.drop(columns=["speaker_id"])
    binned = bin_attributes(frame, config)
    got = binned["speed"].map(SPEED_ORDER)
    want = truth["true_speed"].map(SPEED_ORDER)
    known = got.notna()
    tau = kendalltau(want[known], binned.loc[known, "speed_z"])[0]
    return 100.0 * float((got[known] == want[known]).sum()) / len(want), float(tau)


def gender_scores(
    truth: pd.DataFrame, measured: pd.DataFrame, with_speakers: bool, f0_only: bool = False
) -> str:
    frame = measured if with_speakers else measured.drop(columns=["speaker_id"])
    if f0_only:
        frame = frame.assign(vtl_cm=np.nan)
    binned = bin_attributes(frame)
    unknown = binned["gender"] == "unknown"
    right = binned["gender"] == truth["true_gender"]
    missed = truth.loc[~right, "speaker_id"].value_counts()
    return (
        f"{100 * right.mean():.1f} % right, {100 * unknown.mean():.1f} % unknown, "
        f"{100 * (~right & ~unknown).mean():.1f} % wrong, mean confidence {binned['gender_confidence'].mean():.2f}"
        + (
            f"; missed clips by voice: {', '.join(f'{v} {n}' for v, n in missed.items())}"
            if len(missed)
            else ""
        )
    )


def relative_section(args, tmp: Path) -> None:
    start = time.perf_counter()
    truth = relative_tempo_corpus(
        tmp / "relative", args.family, args.clips, args.max_shift, args.seed
    )
    print(
        f"== {args.family} family: {len(truth)} clips, {truth['speaker_id'].nunique()} voices, tempo 0.75/1/1.33 "
        f"x the voice's rate, pitch shift ±{args.max_shift:g} st (made in {time.perf_counter() - start:.1f} s) =="
    )
    for condition, text_column in (
        ("own transcript", "own_text"),
        ("no transcript", None),
        ("mismatched transcript", "other_text"),
    ):
        frame = truth[["clip_id", "audio_path"]].copy()
        if text_column:
            frame["text"] = truth[text_column]
        measured = measure_frame(frame, workers=args.workers, desc=condition)
        measured.insert(1, "speaker_id", truth["speaker_id"].to_numpy())
        print(f"\n-- {condition} --")
        for rule, (config, column) in SPEED_RULES.items():
            accuracy, tau = speed_scores(truth, measured, config, column)
            print(f"speed with speaker ids, {rule:<45} {accuracy:5.1f} %  tau {tau:.2f}")
        accuracy, tau = speed_scores(truth, measured, BinningConfig(), None, with_speakers=False)
        print(f"speed without speaker ids (corpus group){'':<29} {accuracy:5.1f} %  tau {tau:.2f}")
        if text_column:
            binned = bin_attributes(measured)
            print(
                f"transcripts not used (taken for another clip's): {100 * (binned['speed_source'] != 'transcript').mean():.1f} %"
            )
        if text_column is None:
            print(f"gender without speaker ids: {gender_scores(truth, measured, False)}")
            print(f"gender with speaker ids:    {gender_scores(truth, measured, True)}")
            print(
                f"gender without speaker ids, F0-only model: {gender_scores(truth, measured, False, f0_only=True)}"
            )


def style_section(args, tmp: Path) -> None:
    from fsclap.config import load_settings
    from pipeline.caption import caption_manifest
    from pipeline.scoring import attribute_accuracy
    from pipeline.synth import generate_style_corpus

    corpus = tmp / "style"
    start = time.perf_counter()
    try:
        generate_style_corpus(
            corpus, n=args.style_clips, seed=args.seed, workers=args.workers, family=args.family
        )
    except TypeError:  # a generator without families
        generate_style_corpus(corpus, n=args.style_clips, seed=args.seed, workers=args.workers)
    print(
        f"\n== style corpus ({args.family}): {args.style_clips} clips in {time.perf_counter() - start:.1f} s =="
    )
    truth = pd.read_parquet(corpus / "manifest.parquet")
    bare = (
        corpus / "bare.parquet"
    )  # only the audio goes in: intended labels must not reach the captioner
    truth[["clip_id", "audio_path", "text", "speaker_id"]].to_parquet(bare, index=False)
    settings = load_settings(overrides={"workers": args.workers, "profile": "offline"})
    start = time.perf_counter()
    result = caption_manifest(bare, tmp / "captioned.parquet", settings)
    seconds = time.perf_counter() - start
    print(
        f"fsclap caption: {result.clips} clips in {seconds:.1f} s = {result.clips / seconds:.1f} clips/s"
    )
    captioned = (
        pd.read_parquet(result.out_path).set_index("clip_id").loc[truth["clip_id"]].reset_index()
    )
    for rule, config in {
        "default": BinningConfig(),
        "speaker": BinningConfig(reference="speaker"),
    }.items():
        binned = bin_attributes(captioned, config).replace({"unknown": None})
        scores = attribute_accuracy(
            truth, binned, ["gender", "pitch", "speed", "energy"], key="clip_id"
        )
        print(
            f"{rule:>8}: "
            + "  ".join(
                f"{a} {100 * s.accuracy:.1f}% (n={s.n}, unscored {s.unscored})"
                for a, s in scores.items()
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        default="train",
        choices=["train", "train-ja", "test", "all"],
        help="train-ja: espeak-ng's Japanese voice (kana sentences), part of the train family.",
    )
    parser.add_argument(
        "--clips", type=int, default=12, help="Clips per voice (relative-tempo section)."
    )
    parser.add_argument(
        "--max-shift", type=float, default=4.0, help="Largest random pitch shift (semitones)."
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--style", action="store_true", help="Also caption a generated style corpus."
    )
    parser.add_argument("--style-clips", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        relative_section(args, Path(tmp))
        if args.style:
            style_section(args, Path(tmp))


if __name__ == "__main__":
    main()
