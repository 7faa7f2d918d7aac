"""Caption wording the model never trained on, on the training family only: does re-phrasing the training
captions every epoch (``recaption``) help queries worded otherwise?

    .venv/bin/python benchmarks/recaption.py --rows "stored=recaption=0" "half=recaption=0.5" "every=recaption=1.0" \
        [--seeds 0,1] [--out DIR]

The caption writer's (``fsclap/caption_writer.py``) English templates and, for every level with several
words, its last word are split into two halves. The benchmark's 600-clip espeak-ng corpus
(``benchmarks/generalization.py``'s train-family corpus, relative labels; 420 train / 90 validation
clips) is captioned with the first half only — its stored captions and, in this process, the trainer's
re-phrasing — and the 90 test clips (6 held-out espeak-ng voices) are ranked with captions of either
half: ``seen`` (other draws of the training half) and ``held`` (the held-out half), and with a third
wording of other words and frames (``other``, defined here). Each row is a list
of ``--set`` overrides joined by ``;`` (default settings otherwise, FS-CLAP). Nothing here reads the
test family of voices. Prints R@1/R@10/mAP@10 both ways and text->audio top-1 agreement per attribute;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ATTRIBUTES = ["gender", "pitch", "speed", "energy", "emotion"]

# A third wording for validation: words neither the caption writer nor benchmarks/alt_captions.py were
# written from (train family only; it tells whether a change teaches the text side new words).
OTHER_WORDS = {
    "gender": {
        "female": ["a female talker", "a woman's voice"],
        "male": ["a male talker", "a man's voice"],
    },
    "pitch": {
        "low": ["rumbling", "low-toned", "baritone-like"],
        "normal": ["mid-range", "middling-toned"],
        "high": ["squeaky", "piping", "treble-like"],
    },
    "speed": {
        "slow": ["plodding", "sluggish", "drawn-out"],
        "normal": ["steady", "evenly timed"],
        "fast": ["hurried", "racing", "rushed"],
    },
    "energy": {
        "low": ["muted", "faint", "subdued"],
        "normal": ["mid-volume", "ordinary-volume"],
        "high": ["booming", "thunderous", "blaring"],
    },
    "emotion": {
        "happy": ["delighted", "upbeat"],
        "sad": ["gloomy", "downcast"],
        "angry": ["enraged", "irate"],
        "neutral": ["matter-of-fact", "flat"],
        "fearful": ["terrified", "panicky"],
        "disgusted": ["revolted", "sickened"],
        "surprised": ["startled", "stunned"],
    },
}
OTHER_FRAMES = (
    "{gender}: {pitch}, {speed}, {energy}, {emotion}.",
    "Picture {gender}, {emotion} in mood, {pitch} in tone, {speed} in tempo and {energy} in volume.",
    "{gender} that is {pitch} and {energy}, {speed}, {emotion}.",
    "Recording of {gender}; tone {pitch}, tempo {speed}, loudness {energy}, mood {emotion}.",
)


def other_caption(row: dict, seed: int) -> str:
    import random

    rng = random.Random(f"{seed}|{row['clip_id']}|other")
    words = {a: rng.choice(OTHER_WORDS[a].get(str(row[a]), [str(row[a])])) for a in ATTRIBUTES}
    text = rng.choice(OTHER_FRAMES).format(**words)
    return text[:1].upper() + text[1:]


def half_writer(part: int, seed: int = 0):
    """The caption writer restricted to one half of its English templates and words (0: train, 1: held out)."""
    import fsclap.caption_writer as cw

    writer = cw.CaptionWriter("en", seed)
    writer.templates = tuple(t for i, t in enumerate(cw.EN_TEMPLATES) if i % 2 == part)
    writer.vocabulary = {
        attr: {
            role: {
                level: (words[:-1] if part == 0 else words[-1:]) if len(words) > 1 else words
                for level, words in levels.items()
            }
            for role, levels in roles.items()
        }
        for attr, roles in cw.EN.items()
    }
    return writer


def recaptioned(frame: pd.DataFrame, part: int, seed: int) -> pd.DataFrame:
    writer = half_writer(part, seed)
    out = frame.copy()
    out["caption"] = [
        writer.write({a: r[a] for a in ATTRIBUTES}, str(r["clip_id"]))
        for r in out.to_dict("records")
    ]
    return out


def train_half_only() -> None:
    """The trainer's re-phrasing (``model.data.training_captioner``) draws from the training half too."""
    import fsclap.caption_writer as cw

    def write_caption(attributes, key="", seed=0, language="en"):
        return half_writer(0, seed).write(attributes, key)

    cw.write_caption = write_caption  # loader workers fork after this, so they inherit it


def main() -> None:
    from generalization import distinct_captions, evaluate_gallery, style_corpus, write_manifest

    from fsclap.log import setup_logging
    from model.train_config import load_train_config
    from model.training import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["stored=recaption=0", "every=recaption=1.0"],
        help="NAME=key=value;key=value ...",
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-bench" / "recaption"
    )
    parser.add_argument(
        "--corpus-root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fsclap-bench" / "generalization" / "full",
        help="where generalization.py keeps (or makes) its 600-clip train-family corpus",
    )
    args = parser.parse_args()
    setup_logging("WARNING")
    train_half_only()
    corpus = style_corpus(args.corpus_root, 600, 0, "train", "relative")
    manifests = {
        split: write_manifest(
            recaptioned(corpus[corpus["split"] == split], 0, 0), args.out / f"{split}.parquet"
        )
        for split in ("train", "val")
    }
    test = corpus[corpus["split"] == "test"]
    galleries = {
        name: write_manifest(
            distinct_captions(recaptioned(test, part, 1)), args.out / f"gallery_{name}.parquet"
        )
        for name, part in (("seen", 0), ("held", 1))
    }
    other = test.copy()
    other["caption"] = [other_caption(r, 1) for r in other.to_dict("records")]
    galleries["other"] = write_manifest(
        distinct_captions(other), args.out / "gallery_other.parquet"
    )
    results = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for row in args.rows:
            name, _, sets = row.partition("=")
            cfg = load_train_config(
                None, ["workers=1", *[s for s in sets.split(";") if s], f"seed={seed}"]
            )
            run_dir = args.out / f"run_{name}_s{seed}"
            start = time.perf_counter()
            train(manifests["train"], manifests["val"], run_dir, cfg)
            seconds = time.perf_counter() - start
            for gallery, path in galleries.items():
                m = evaluate_gallery(run_dir, path)
                results.setdefault(f"{name}|{gallery}", []).append(m)
                agree = {k: round(float(v), 1) for k, v in m["agreement_t2a"].items()}
                print(
                    f"[{name} seed {seed}] {gallery}: N={m['n']} a2t R@1 {m['a2t']['R@1']:.1f} R@10 {m['a2t']['R@10']:.1f} "
                    f"mAP@10 {m['a2t']['mAP@10']:.1f} | t2a R@1 {m['t2a']['R@1']:.1f} R@10 {m['t2a']['R@10']:.1f} "
                    f"mAP@10 {m['t2a']['mAP@10']:.1f} | t2a top-1 agreement {agree} ({seconds:.0f} s training)",
                    flush=True,
                )
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
