"""Measure how Piper's ``length_scale`` changes the speaking rate it realises, for the generator.

Piper scales its predicted phoneme durations by ``length_scale``, but the rate it realises moves
less than asked (about two thirds of it in log rate: ``length_scale = 1/0.75`` gives 0.83x, not
0.75x), so a "slow" line asked for at tempo 0.75 comes out nearly normal. This script synthesises
``--sentences`` English sentences of the generator's bank at a ladder of ``length_scale`` values
(noise off, as the generator renders), measures each rendering's speech span (trimmed to its
active frames) against the same sentence at 1.0, and prints the median realised tempo per value:
the ``PIPER_TEMPO_CURVE`` table of :mod:`pipeline.synth.voices`, which the generator inverts.

    .venv/bin/python scripts/fit_piper_rate.py [--sentences 24] [--seed 5]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fsclap.acoustics import trim_bounds  # noqa: E402
from pipeline.synth import sentences as bank  # noqa: E402
from pipeline.synth import voices  # noqa: E402

LADDER = (0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0)


def speech_seconds(text: str, length_scale: float) -> float:
    audio, sr = voices.piper_render(text, length_scale)  # what the generator renders, before gain
    start, end = trim_bounds(audio, sr)
    return (end - start) / sr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    texts = bank.distinct_sentences(random.Random(args.seed), args.sentences, "en")
    ratios = {ls: [] for ls in LADDER}
    for text in texts:
        base = speech_seconds(text, 1.0)
        for ls in LADDER:
            ratios[ls].append(base / speech_seconds(text, ls))
    print("PIPER_TEMPO_CURVE = (  # (length_scale, realised tempo), median over sentences")
    for ls in LADDER:
        spread = np.percentile(ratios[ls], [10, 90])
        print(
            f"    ({ls}, {np.median(ratios[ls]):.3f}),  # 10-90 %: {spread[0]:.3f}-{spread[1]:.3f}"
        )
    print(")")


if __name__ == "__main__":
    main()
