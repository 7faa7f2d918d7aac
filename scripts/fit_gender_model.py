"""Fit the gender classifier of :mod:`pipeline.gender` on train-family (espeak-ng) speech only.

Generates ``--clips`` utterances per espeak voice whose median F0 is drawn as ``fsclap synth style``
draws it (``bands``: a low / normal / high band of the voice's gender, so high men and low women
meet in the 140-180 Hz overlap as they do in the generated corpora), or shifted uniformly within
±``--max-shift`` semitones of the voice's own pitch (``uniform``: levels relative to each voice, as
``label_mode="relative"`` makes them); the default ``both`` alternates the two, so the fit is not
tied to one way of setting pitch; measures
median F0 and vocal-tract length, reports accuracy / unknown rate with whole voices held out (5
folds by voice), fits on every voice and writes ``pipeline/gender_params.py``.

    .venv/bin/python scripts/fit_gender_model.py [--clips 10] [--pitch both|bands|uniform] [--seed 0] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fsclap.acoustics import f0_stats, trim_bounds  # noqa: E402
from pipeline.attributes import BinningConfig  # noqa: E402
from pipeline.gender import classify_gender, f0_semitones, fit_logistic, vocal_tract_length  # noqa: E402
from pipeline.synth.sentences import make_sentence  # noqa: E402
from pipeline.synth.style import PITCH_BANDS_HZ  # noqa: E402
from pipeline.synth.voices import (
    ENGINE_SAMPLE_RATE,
    PITCH_RANGES,
    Controls,
    synthesize,
    voice_catalogue,
)  # noqa: E402

OUT = ROOT / "pipeline" / "gender_params.py"
MIN_CONFIDENCE = BinningConfig().min_gender_confidence  # the captioner's abstention threshold


def train_voices():
    try:
        voices = voice_catalogue(family="train")
    except TypeError:  # older catalogue without families
        voices = voice_catalogue(include_piper=False)
    return [v for v in voices if v.engine == "espeak"]


def voice_f0(voice, rng: random.Random) -> float:
    """The voice's own median F0 (no shift), over two sentences."""
    audio = np.concatenate([synthesize(voice, make_sentence(rng), Controls())[0] for _ in range(2)])
    return f0_stats(audio, ENGINE_SAMPLE_RATE)[0]


def draw_shift(voice, own_f0: float, pitch: str, max_shift: float, rng: random.Random) -> float:
    if pitch == "both":
        pitch = rng.choice(["bands", "uniform"])
    if pitch == "uniform":
        return rng.uniform(-max_shift, max_shift)
    low, high = PITCH_BANDS_HZ[(voice.gender, rng.choice(["low", "normal", "high"]))]
    return 12.0 * math.log2(rng.uniform(low, high) / own_f0)


def measure_voices(clips: int, max_shift: float, seed: int, pitch: str = "both") -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for voice in train_voices():
        own_f0 = voice_f0(voice, rng)
        for _ in range(clips):
            controls = Controls(
                semitones=draw_shift(voice, own_f0, pitch, max_shift, rng),
                tempo=rng.choice([0.75, 1.0, 1.33]),
                pitch_range=rng.choice(PITCH_RANGES),
            )
            audio, _ = synthesize(voice, make_sentence(rng), controls)
            start, end = trim_bounds(audio, ENGINE_SAMPLE_RATE)
            speech = audio[start:end]
            f0 = f0_stats(speech, ENGINE_SAMPLE_RATE)[0]
            rows.append(
                {
                    "voice": voice.voice_id,
                    "gender": voice.gender,
                    "semitones": controls.semitones,
                    "f0_hz": f0,
                    "vtl_cm": vocal_tract_length(speech, ENGINE_SAMPLE_RATE),
                }
            )
    return pd.DataFrame(rows)


def fit(frame: pd.DataFrame) -> dict:
    ok = np.isfinite(frame["f0_hz"])
    both = ok & np.isfinite(frame["vtl_cm"])
    st = frame["f0_hz"].map(f0_semitones)
    return {
        "f0+vtl": fit_logistic(
            np.c_[st[both], frame.loc[both, "vtl_cm"]], frame.loc[both, "gender"].to_numpy()
        ),
        "f0": fit_logistic(st[ok].to_numpy()[:, None], frame.loc[ok, "gender"].to_numpy()),
    }


def held_out_report(frame: pd.DataFrame, folds: int = 5) -> None:
    voices = sorted(frame["voice"].unique())
    order = random.Random(0).sample(voices, len(voices))
    for use_vtl in (True, False):
        right = unknown = total = 0
        for k in range(folds):
            test = set(order[k::folds])
            params = fit(frame[~frame["voice"].isin(test)])
            for row in frame[frame["voice"].isin(test)].itertuples():
                gender, conf, _ = classify_gender(
                    row.f0_hz, row.vtl_cm if use_vtl else np.nan, params
                )
                total += 1
                if gender is None or conf < MIN_CONFIDENCE:
                    unknown += 1
                else:
                    right += gender == row.gender
        name = "f0+vtl" if use_vtl else "f0 only"
        print(
            f"held-out voices ({folds} folds), {name}: {100 * right / total:.1f} % right, "
            f"{100 * unknown / total:.1f} % unknown (confidence < {MIN_CONFIDENCE}), n={total}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10, help="Utterances per espeak voice.")
    parser.add_argument(
        "--pitch",
        choices=["both", "bands", "uniform"],
        default="both",
        help="bands: F0 drawn in the style generator's bands; uniform: shifts within --max-shift; "
        "both: either, per clip.",
    )
    parser.add_argument(
        "--max-shift", type=float, default=6.0, help="Largest uniform pitch shift (semitones)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dry-run", action="store_true", help="Report, do not write gender_params.py."
    )
    args = parser.parse_args()
    frame = measure_voices(args.clips, args.max_shift, args.seed, args.pitch)
    print(f"{len(frame)} clips, {frame['voice'].nunique()} espeak voices; median per gender:")
    print(frame.groupby("gender")[["f0_hz", "vtl_cm"]].median().round(1).to_string())
    held_out_report(frame)
    params = fit(frame)
    if args.dry_run:
        print(json.dumps(params, indent=1))
        return
    OUT.write_text(
        '"""Fitted parameters of the gender classifier (:mod:`pipeline.gender`). Generated by\n'
        f"``scripts/fit_gender_model.py --clips {args.clips} --pitch {args.pitch} --max-shift {args.max_shift:g} "
        f"--seed {args.seed}``"
        ' on espeak-ng (train family) speech; do not edit by hand."""\n\n'
        f"GENDER_MODELS = {json.dumps(params, indent=4)}\n",
        encoding="utf-8",
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
