"""Style captioning: clips -> measured attributes -> levels -> natural-language captions.

Used two ways:

* ``fsclap caption --manifest M --out M2`` (:func:`caption_manifest`): any clip manifest in,
  the same rows out with ``gender/pitch/speed/energy/emotion``, the measured numbers, and
  ``caption`` (the chosen language) plus ``caption_en`` and ``caption_zh``.
* stage ``caption`` of the corpus builder (:class:`Caption`): per episode, the kept segments of
  ``DIR/segments/<drama>.parquet`` are measured (and tagged by SenseVoice on the ``paper``
  profile) into ``DIR/captions/<drama>/<episode>.parquet``; :meth:`Caption.finish` then bins the
  whole corpus at once (speaker-relative levels need every clip of the speaker) and writes
  ``DIR/manifests/clips.parquet`` — the clip manifest contract with attributes and provenance.

Defined outcomes instead of crashes (each recorded in ``caption_status`` / ``measure_note``):

* audio that cannot be read (missing, corrupt) — ``caption_status = "unreadable: ..."``;
* silence or a clip too short for F0 / rate — the unmeasurable attributes are ``unknown`` and never
  described; a clip with *nothing* describable gets ``caption_status = "nothing measurable: ..."``
  and no caption (it is left out of the written manifest and listed in the rejects file);
* clipped audio — energy is ``unknown`` when more than ``max_clipped_fraction`` of samples hit full
  scale (its level is not measurable), noted in ``measure_note``;
* a transcript that is not valid UTF-8 — not used (rate from onsets), noted;
* conflicting attributes — a level given in the input manifest that disagrees with the measured
  one is resolved by ``conflict_policy`` (default ``drop``: neither is described) and the
  disagreement is written to ``conflicts``; so is a clip whose own F0 contradicts its speaker's
  gender (the speaker's wins).

Offline profile: emotion is not measured — ``emotion = "unknown"``, ``emotion_source = "not
measured (offline profile)"``, and the caption never mentions emotion.

Levels given in the input manifest are kept in ``<attr>_given``; where the audio measured nothing
for an attribute the given level fills ``<attr>`` and ``<attr>_from`` says ``given``. A caption
states only levels the clip's own audio supports (``<attr>_from = measured``): a given label is
never put into words, and a clip whose audio cannot be read is rejected whatever labels it carries.
"""

from __future__ import annotations

import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from fsclap.audio import AudioError, load_audio
from fsclap.caption_writer import CaptionWriter
from fsclap.config import Settings, format_validation_error
from fsclap.errors import FsclapError
from fsclap.io import write_parquet, write_table
from fsclap.layout import DataRoot
from fsclap.log import get_logger, progress
from fsclap.manifest import (
    ATTRIBUTE_LEVELS,
    clip_rows,
    read_table,
)
from pipeline.attributes import MEASURE_VERSION, BinningConfig, bin_attributes, measure_clip
from pipeline.emotion import SenseVoiceTagger
from pipeline.stage import (
    FileStateCache,
    Stage,
    StageConfig,
    StageContext,
    file_states,
    is_up_to_date,
    short_hash,
    write_stamp,
)
from pipeline.tables import Episode

log = get_logger("pipeline.caption")

CAPTION_VERSION = "1"
TEXT_COLUMNS = ("text", "txt", "transcript", "sentence", "transcription")
STYLE_COLUMNS = ("gender", "pitch", "speed", "energy", "emotion")
EMOTION_NOT_MEASURED = "not measured (offline profile)"
MEASURE_COLUMNS = [
    "duration_s",
    "speech_s",
    "f0_median_hz",
    "f0_range_semitones",
    "voiced_fraction",
    "rms_dbfs",
    "peak_dbfs",
    "clipped_fraction",
    "speech_rate",
    "speech_rate_unit",
    "syllables",
    "gender_f0",
    "gender_f0_confidence",
    "measure_note",
    "vtl_cm",
    "nuclei",
    "timebase_s",
    "transcript_units",
    "articulation_rate",
    "read_error",
]
EMOTION_COLUMNS = [
    "emotion_measured",
    "emotion_source",
    "audio_events",
    "language_detected",
    "sensevoice_text",
    "emotion_note",
]


class CaptionConfig(StageConfig):
    """Config of the caption stage and of ``fsclap caption`` (``stages.caption`` in settings)."""

    operational: ClassVar[frozenset[str]] = frozenset({"workers", "measure_workers", "batch_size"})

    caption_language: Literal["en", "zh"] = Field(
        "en", description="Language of the `caption` column (both are kept)."
    )
    seed: int = Field(
        0,
        description="Template choice seed; a clip's caption depends only on (seed, clip_id, language).",
    )
    emotion: Literal["auto", "sensevoice", "none"] = Field(
        "auto", description="auto: SenseVoiceSmall on the paper profile, none on offline."
    )
    conflict_policy: Literal["drop", "measured", "given"] = Field(
        "drop",
        description="A given level that disagrees with the measured one: drop both, keep measured, keep given.",
    )
    binning: BinningConfig = Field(default_factory=BinningConfig)
    batch_size: int = Field(16, ge=1, description="Clips per SenseVoice call.")
    measure_workers: int = Field(
        0, ge=0, description="Processes measuring clips in `fsclap caption` (0: settings.workers)."
    )
    workers: int = Field(1, ge=1)


# --- reading inputs ------------------------------------------------------------------------------


def clean_transcript(value: Any) -> tuple[str | None, str]:
    """A usable transcript and a note. Bytes must decode as UTF-8 and strings must not hold
    undecodable bytes (read with ``surrogateescape``); otherwise the transcript is dropped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, ""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"transcript is not valid UTF-8 (byte {exc.start}); rate from onsets"
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return None, f"transcript is not valid UTF-8 (character {exc.start}); rate from onsets"
    return (text if text.strip() else None), ""


def read_clip_table(path: str | Path) -> pd.DataFrame:
    """A clip list to caption: CSV (UTF-8; stray bytes kept as surrogates so one bad transcript
    cannot fail the file) or Parquet, with ``audio_path``/``wav_fp``; captions are optional."""
    path = Path(path)
    return clip_rows(
        read_table(path, keep_bad_bytes=True), path.parent, path, required=("audio_path",)
    )


def transcript_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in TEXT_COLUMNS if c in frame.columns), None)


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    audio_path: str
    start_s: float | None
    end_s: float | None
    text: Any


def _measure_job(job: ClipJob) -> dict:
    """Measure one clip; never raises (a read error becomes ``read_error``)."""
    text, text_note = clean_transcript(job.text)
    try:
        audio, sr = load_audio(job.audio_path, start_s=job.start_s, end_s=job.end_s)
    except (AudioError, FsclapError, OSError) as exc:
        return {
            "clip_id": job.clip_id,
            "read_error": " ".join(str(exc).split())[:300] or type(exc).__name__,
        }
    except Exception as exc:  # noqa: BLE001 - a decoder bug must fail one clip, not the run
        return {"clip_id": job.clip_id, "read_error": f"{type(exc).__name__}: {exc}"[:300]}
    m = measure_clip(audio, sr, text).to_dict()
    if text_note:
        m["measure_note"] = "; ".join(n for n in (text_note, m["measure_note"]) if n)
    return {"clip_id": job.clip_id, **m, "read_error": ""}


def _jobs(frame: pd.DataFrame, text_col: str | None) -> list[ClipJob]:
    starts = frame["start_s"] if "start_s" in frame.columns else pd.Series([None] * len(frame))
    ends = frame["end_s"] if "end_s" in frame.columns else pd.Series([None] * len(frame))
    texts = frame[text_col] if text_col else pd.Series([None] * len(frame))
    return [
        ClipJob(
            str(c), str(p), None if pd.isna(s) else float(s), None if pd.isna(e) else float(e), t
        )
        for c, p, s, e, t in zip(frame["clip_id"], frame["audio_path"], starts, ends, texts)
    ]


def measure_frame(frame: pd.DataFrame, workers: int = 1, desc: str = "measure") -> pd.DataFrame:
    """The :data:`MEASURE_COLUMNS` of every row (``clip_id`` + ``audio_path`` [+ start/end, text])."""
    jobs = _jobs(frame, transcript_column(frame))
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(
                progress(
                    pool.map(
                        _measure_job, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers)))
                    ),
                    desc=desc,
                    total=len(jobs),
                    unit="clip",
                )
            )
    else:
        rows = [_measure_job(j) for j in progress(jobs, desc=desc, total=len(jobs), unit="clip")]
    measured = pd.DataFrame(rows).reindex(columns=["clip_id", *MEASURE_COLUMNS])
    measured["read_error"] = measured["read_error"].fillna("")
    measured["measure_note"] = measured["measure_note"].fillna("")
    return measured


def tag_emotions(frame: pd.DataFrame, tagger, batch_size: int = 16) -> pd.DataFrame:
    """SenseVoice tags for every readable row; :data:`EMOTION_COLUMNS` + ``clip_id``."""
    rows = []
    jobs = _jobs(frame, None)
    for start in progress(
        range(0, len(jobs), batch_size),
        desc="sensevoice",
        total=math.ceil(len(jobs) / batch_size),
        unit="batch",
    ):
        batch, audios = [], []
        for job in jobs[start : start + batch_size]:
            try:
                audio, _ = load_audio(
                    job.audio_path, sample_rate=16000, start_s=job.start_s, end_s=job.end_s
                )
            except (AudioError, FsclapError, OSError) as exc:
                rows.append(
                    {
                        "clip_id": job.clip_id,
                        "emotion_measured": "unknown",
                        "emotion_source": tagger.name,
                        "emotion_note": f"not tagged: {exc}"[:300],
                    }
                )
                continue
            batch.append(job)
            audios.append(audio)
        for job, tags in zip(batch, tagger.tag(audios) if audios else []):
            rows.append(
                {
                    "clip_id": job.clip_id,
                    "emotion_measured": tags.emotion,
                    "emotion_source": tagger.name,
                    "audio_events": tags.events_text,
                    "language_detected": tags.language or "",
                    "sensevoice_text": tags.text,
                    "emotion_note": tags.note,
                }
            )
    return pd.DataFrame(rows).reindex(columns=["clip_id", *EMOTION_COLUMNS])


def no_emotion(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": frame["clip_id"].astype(str),
            "emotion_measured": "unknown",
            "emotion_source": EMOTION_NOT_MEASURED,
            "audio_events": "",
            "language_detected": "",
            "sensevoice_text": "",
            "emotion_note": "",
        }
    )


def _clip_key(job: ClipJob, tagger_identity: Any) -> str:
    """What a clip's measurement depends on: the audio file (size, mtime), the span, the transcript."""
    try:
        stat = os.stat(job.audio_path)
        file = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        file = None
    text = job.text.hex() if isinstance(job.text, (bytes, bytearray)) else repr(job.text)
    return short_hash(
        [MEASURE_VERSION, job.audio_path, file, job.start_s, job.end_s, text, tagger_identity], 24
    )


RESUME_CHUNK = 256  # clips per saved chunk of `fsclap caption`


def measure_resumable(
    frame: pd.DataFrame, tagger, config: CaptionConfig, workers: int, cache_dir: Path
) -> pd.DataFrame:
    """Measurements (+ tags) of every row, done in chunks saved to ``cache_dir`` as they finish,
    so a killed ``fsclap caption`` run resumes without measuring a clip twice."""
    identity = tagger.identity() if tagger else "none"
    keys = [_clip_key(job, identity) for job in _jobs(frame, transcript_column(frame))]
    done = (
        [pd.read_parquet(p) for p in sorted(cache_dir.glob("part-*.parquet"))]
        if cache_dir.is_dir()
        else []
    )
    done = (
        pd.concat(done, ignore_index=True).drop_duplicates("key", keep="last")
        if done
        else pd.DataFrame(columns=["key"])
    )
    known = set(done["key"])
    todo = [i for i, k in enumerate(keys) if k not in known]
    if known and todo:
        log.info(
            "resuming: %d of %d clips already measured in %s",
            len(keys) - len(todo),
            len(keys),
            cache_dir,
        )
    parts = [done]
    chunk = RESUME_CHUNK
    for start in range(0, len(todo), chunk):
        rows = frame.iloc[todo[start : start + chunk]]
        part = measure_frame(rows, workers=workers, desc=f"measure {start + len(rows)}/{len(todo)}")
        emotions = tag_emotions(rows, tagger, config.batch_size) if tagger else no_emotion(rows)
        part = part.merge(emotions, on="clip_id", how="left")
        part.insert(0, "key", [keys[i] for i in todo[start : start + chunk]])
        write_parquet(
            cache_dir / f"part-{short_hash(list(part['key']))}.parquet",
            _storable(part.drop(columns=["clip_id"])),
        )
        parts.append(part.drop(columns=["clip_id"]))
    table = pd.concat([p for p in parts if len(p)], ignore_index=True).drop_duplicates(
        "key", keep="last"
    )
    table = table.set_index("key").reindex(keys).reset_index(drop=True)
    table.insert(0, "clip_id", frame["clip_id"].astype(str).to_numpy())
    return table


# --- levels, conflicts, captions ------------------------------------------------------------------


def _given_level(column: str, value: Any) -> tuple[str | None, str]:
    """A level given in the input manifest, normalised; ``(None, note)`` when it is not a level."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, ""
    level = str(value).strip().lower()
    if level in ("", "unknown", "nan", "none"):
        return None, ""
    if level not in ATTRIBUTE_LEVELS[column]:
        return (
            None,
            f"given {column} {value!r} is not one of {list(ATTRIBUTE_LEVELS[column])}; ignored",
        )
    return level, ""


def resolve_given(frame: pd.DataFrame, given: pd.DataFrame | None, policy: str) -> pd.DataFrame:
    """Combine measured levels with levels given in the input (``<attr>_given`` columns are kept)."""
    out = frame.copy()
    conflicts = [
        [c] if c else [] for c in out.get("gender_conflict", pd.Series([""] * len(out))).fillna("")
    ]
    if given is not None:
        for column in STYLE_COLUMNS:
            if column not in given.columns:
                continue
            final, given_col, origin = [], [], []
            for i, (measured, raw) in enumerate(zip(out[column], given[column])):
                level, note = _given_level(column, raw)
                given_col.append(level or "")
                if note:
                    conflicts[i].append(note)
                if level is None or measured == level:
                    final.append(measured)
                    origin.append("measured" if measured != "unknown" else "")
                elif measured == "unknown":
                    final.append(level)  # labelled by the source, not contradicted by a measurement
                    origin.append("given")
                else:
                    conflicts[i].append(
                        f"{column}: given {level}, measured {measured}; kept {policy}"
                    )
                    kept = {"drop": "unknown", "measured": measured, "given": level}[policy]
                    final.append(kept)
                    origin.append({"drop": "", "measured": "measured", "given": "given"}[policy])
            out[f"{column}_given"] = given_col
            out[column] = final
            out[f"{column}_from"] = origin
    out["conflicts"] = [" | ".join(c) for c in conflicts]
    return out


def write_captions(frame: pd.DataFrame, language: str, seed: int) -> pd.DataFrame:
    """``caption_en``, ``caption_zh``, ``caption`` (= ``language``) and ``caption_status``."""
    out = frame.copy()
    writers = {lang: CaptionWriter(lang, seed) for lang in ("en", "zh")}
    captions = {"en": [], "zh": []}
    status = []
    read_errors = out.get("read_error", pd.Series([""] * len(out))).fillna("").to_numpy()
    # where levels were given (``<attr>_from``), only the measured ones are put into words
    origin = {c: out[f"{c}_from"].to_numpy() for c in STYLE_COLUMNS if f"{c}_from" in out.columns}
    for i, row in enumerate(out[["clip_id", *STYLE_COLUMNS]].itertuples(index=False)):
        attrs = {
            c: getattr(row, c) if c not in origin or origin[c][i] == "measured" else "unknown"
            for c in STYLE_COLUMNS
        }
        known = [c for c, v in attrs.items() if v and v != "unknown"]
        if not known or read_errors[i]:
            for lang in captions:
                captions[lang].append("")
            status.append("nothing measurable")
            continue
        for lang, writer in writers.items():
            captions[lang].append(writer.write(attrs, key=str(row.clip_id)))
        status.append("ok")
    out["caption_en"] = captions["en"]
    out["caption_zh"] = captions["zh"]
    out["caption"] = out[f"caption_{language}"]
    out["caption_language"] = language
    reasons = []
    for s, err, note in zip(
        status,
        read_errors,
        out.get("measure_note", pd.Series([""] * len(out))).fillna(""),
    ):
        if s == "ok":
            reasons.append("ok")
        elif err:
            reasons.append(f"unreadable: {err}")
        else:
            reasons.append(f"nothing measurable: {note or 'no attribute could be measured'}")
    out["caption_status"] = reasons
    return out


def describe(
    measured: pd.DataFrame, config: CaptionConfig, given: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Measured rows (with ``speaker_id`` when known, and the emotion columns) -> levels + captions."""
    binned = bin_attributes(measured, config.binning)
    binned["emotion"] = binned["emotion_measured"].fillna("unknown")
    # a clip with no signal (unreadable or silent) gets nothing from its speaker either
    silent = (binned["read_error"].fillna("") != "") | ~np.isfinite(
        pd.to_numeric(binned["rms_dbfs"], errors="coerce")
    )
    for column in ("pitch", "speed", "energy", "gender"):
        binned.loc[silent, column] = "unknown"
    resolved = resolve_given(binned, given, config.conflict_policy)
    return write_captions(resolved, config.caption_language, config.seed)


def make_tagger(config: CaptionConfig, settings, device: str = "cpu"):
    """The SenseVoice tagger on the paper profile (or when asked), None when emotion is off.
    A missing model dir raises MissingModelError: never a silent fallback."""
    mode = config.emotion
    if mode == "auto":
        mode = "sensevoice" if settings.profile == "paper" else "none"
    if mode == "none":
        return None

    return SenseVoiceTagger(
        settings.model_path("sensevoice"), device=device, batch_size=config.batch_size
    )


# --- fsclap caption ------------------------------------------------------------------------------


@dataclass
class CaptionResult:
    out_path: Path
    rejects_path: Path | None
    clips: int
    rejected: int
    conflicts: int
    seconds: float
    levels: dict

    def summary(self) -> str:
        parts = [
            f"captioned {self.clips} clips in {self.seconds:.1f} s ({self.clips / max(self.seconds, 1e-9):.1f} clips/s)"
            f" -> {self.out_path}"
        ]
        if self.rejected:
            parts.append(
                f"{self.rejected} clip(s) without a caption (unreadable or nothing measurable): {self.rejects_path}"
            )
        if self.conflicts:
            parts.append(
                f"{self.conflicts} clip(s) with conflicting attributes (see column `conflicts`)"
            )
        for attr, counts in self.levels.items():
            parts.append(f"  {attr}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return "\n".join(parts)


def config_from_settings(settings, **overrides) -> CaptionConfig:
    values = dict(settings.stages.get("caption", {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("seed", settings.seed)
    try:
        return CaptionConfig(**values)
    except Exception as exc:  # pydantic ValidationError -> one line
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            raise FsclapError(f"stages.caption: {format_validation_error(exc)}") from None
        raise


def caption_manifest(
    manifest: str | Path,
    out: str | Path,
    settings,
    language: str | None = None,
    seed: int | None = None,
) -> CaptionResult:
    """``fsclap caption``: measure, tag (paper profile), bin and caption every clip of ``manifest``."""
    import time

    start = time.perf_counter()
    config = config_from_settings(settings, caption_language=language, seed=seed)
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise FsclapError(f"--out must end in .parquet or .csv, got {out.name}")
    tagger = make_tagger(config, settings, settings.resolved_device())  # checked before any work
    frame = read_clip_table(manifest)
    workers = config.measure_workers or max(int(settings.workers), 1)
    cache_dir = out.with_name(out.name + ".partial")
    measured = measure_resumable(frame, tagger, config, workers, cache_dir)
    keep = [
        c
        for c in frame.columns
        if c
        not in set(MEASURE_COLUMNS)
        | set(EMOTION_COLUMNS)
        | set(STYLE_COLUMNS)
        | {"caption", "caption_en", "caption_zh", "caption_status", "conflicts", "caption_language"}
        and not c.endswith(("_given", "_from", "_z", "_ref"))
    ]
    base = frame[keep].merge(measured, on="clip_id", how="left")
    given = (
        frame[[c for c in STYLE_COLUMNS if c in frame.columns]]
        if any(c in frame.columns for c in STYLE_COLUMNS)
        else None
    )
    result = describe(base, config, given)
    ok = result["caption_status"] == "ok"
    rejects_path = None
    if (~ok).any():
        rejects_path = out.with_name(out.stem + ".rejected.csv")
        write_table(rejects_path, result.loc[~ok, ["clip_id", "audio_path", "caption_status"]])
    written = result[ok].copy()
    if written.empty:
        raise FsclapError(f"no clip of {manifest} could be captioned; reasons in {rejects_path}")
    written["audio_path"] = [_relative_to(p, out.parent) for p in written["audio_path"]]
    write_table(out, _storable(written))
    shutil.rmtree(cache_dir, ignore_errors=True)  # the output holds everything now
    levels = {attr: written[attr].value_counts().to_dict() for attr in STYLE_COLUMNS}
    return CaptionResult(
        out,
        rejects_path,
        int(ok.sum()),
        int((~ok).sum()),
        int((written["conflicts"] != "").sum()),
        time.perf_counter() - start,
        levels,
    )


def _relative_to(path: str, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return str(path)


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as written: unmeasured levels empty (the contract has no ``unknown`` gender, pitch,
    speed or energy; emotion keeps ``unknown``), bytes and undecodable text as storable strings."""
    out = frame.copy()
    for col in ("gender", "pitch", "speed", "energy"):
        if col in out.columns:
            out[col] = out[col].where(out[col] != "unknown", None)
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = [
                v.decode("utf-8", "replace")
                if isinstance(v, (bytes, bytearray))
                else v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                if isinstance(v, str)
                else v
                for v in out[col]
            ]
    return out


# --- the corpus-builder stage ----------------------------------------------------------------------


PROVENANCE_COLUMNS = [
    "drama_id",
    "episode_id",
    "episode_index",
    "segment_id",
    "speaker_id",
    "episode_speaker",
    "episode_start_s",
    "episode_end_s",
    "consistency",
    "diarizer",
    "embedding_model",
]


class Caption(Stage):
    """Per episode: measure (and on ``paper`` tag) the episode's kept segments; :meth:`finish`
    bins the corpus and writes ``DIR/manifests/clips.parquet``."""

    name = "caption"
    version = CAPTION_VERSION
    Config = CaptionConfig
    done_status = "captioned"

    def __init__(self, config=None, *, context: StageContext, settings=None):
        super().__init__(config, context=context)
        self.settings = settings
        self._tagger = None
        self._tagger_made = False
        self._dramas = FileStateCache(_indexed_drama)  # segments table -> (table, kept items)

    # --- identity / resources -----------------------------------------------------------------

    @property
    def tagger(self):
        if not self._tagger_made:
            settings = self.settings
            if settings is None:
                settings = Settings(profile=self.context.profile)
            self._tagger = make_tagger(self.config, settings, self.context.device)
            self._tagger_made = True
        return self._tagger

    def check(self) -> None:
        _ = self.tagger  # a missing SenseVoice dir stops the run before any work

    def models(self) -> list[str]:
        return ["sensevoice"] if self.tagger is not None else []

    def measure_identity(self) -> dict:
        """What the per-episode measurements depend on (binning and captions are redone in finish)."""
        tagger = self.tagger
        return {"measure": MEASURE_VERSION, "emotion": tagger.identity() if tagger else "none"}

    def identity(self) -> dict:
        identity = super().identity()
        # binning, language, seed and conflict policy only change finish(); they must not re-measure
        for key in ("caption_language", "seed", "conflict_policy", "binning"):
            identity["config"].pop(key, None)
        return identity

    def extra_identity(self) -> dict:
        return self.measure_identity()

    # --- inputs ---------------------------------------------------------------------------------

    def drama_table(self, drama_id: str) -> Path:
        return self.context.layout.drama_segments(drama_id)

    def _read_drama(self, drama_id: str) -> pd.DataFrame | None:
        drama = self._drama(drama_id)
        return None if drama is None else drama[0]

    def _drama(self, drama_id: str) -> tuple[pd.DataFrame, dict[str, list[list]]] | None:
        """The drama's segments table and, per episode, what its resume key hashes of its kept
        segments (:func:`kept_items`); read again only when the table's (mtime, size) changed, so
        a refresh indexes each drama once instead of filtering the table for every episode."""
        try:
            return self._dramas.get(self.drama_table(drama_id))
        except OSError:
            return None

    def kept_rows(self, episode: Episode) -> pd.DataFrame | None:
        table = self._read_drama(episode.drama_id)
        if table is None:
            return None
        rows = table[
            (table["episode_id"] == episode.episode_id) & table["kept"].fillna(False).astype(bool)
        ]
        return rows.sort_values("segment_id").reset_index(drop=True)

    def input_hash(self, episode: Episode) -> str | None:
        drama = self._drama(episode.drama_id)
        if drama is None:
            return None
        items = []
        for item in drama[1].get(episode.episode_id, []):
            clip_path = item[1]
            try:
                stat = os.stat(self.context.abs(clip_path)) if clip_path else None
            except OSError:
                stat = None
            items.append([*item, [stat.st_size, stat.st_mtime_ns] if stat else None])
        return short_hash(items, 24)

    def output_path(self, episode: Episode) -> Path:
        return self.context.layout.episode_captions(episode.drama_id, episode.episode_id)

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.output_path(episode)]

    # --- work -----------------------------------------------------------------------------------

    def process(self, episode: Episode) -> Episode:
        rows = self.kept_rows(episode)
        rows = (
            rows if rows is not None else pd.DataFrame(columns=["segment_id", "clip_path", "text"])
        )
        frame = pd.DataFrame(
            {
                "clip_id": rows["segment_id"].astype(str),
                "audio_path": [str(self.context.abs(p)) if p else "" for p in rows["clip_path"]],
                "text": rows["text"] if "text" in rows.columns else None,
            }
        )
        if len(frame):
            measured = measure_frame(frame, workers=1, desc=f"caption {episode.episode_id}")
            tagger = self.tagger
            emotions = (
                tag_emotions(frame, tagger, self.config.batch_size) if tagger else no_emotion(frame)
            )
            table = measured.merge(emotions, on="clip_id", how="left")
        else:
            table = pd.DataFrame(columns=["clip_id", *MEASURE_COLUMNS, *EMOTION_COLUMNS])
        table = table.rename(columns={"clip_id": "segment_id"})
        write_parquet(self.output_path(episode), _storable(table))
        result = episode.copy()
        result.n_measured_clips = int(len(table))
        result.n_unreadable_clips = (
            int((table["read_error"].fillna("") != "").sum()) if len(table) else 0
        )
        return result

    def finish(self) -> Path | None:
        """Bin every measured kept segment of the corpus and write ``DIR/manifests/clips.parquet``."""
        return build_clip_manifest(
            self.context.data_root,
            self.config,
            {"caption": self.version, **self.measure_identity()},
        )


def kept_items(table: pd.DataFrame) -> dict[str, list[list]]:
    """Per episode of a drama's segments table, its kept segments as the caption stage's resume key
    hashes them: ``[segment_id, clip_path, start_s, end_s, text]`` in ``segment_id`` order."""
    kept = table[table["kept"].fillna(False).astype(bool)].sort_values("segment_id")
    columns = ["episode_id", "segment_id", "clip_path", "start_s", "end_s", "text"]
    items: dict[str, list[list]] = {}
    for episode_id, *item in kept[columns].itertuples(index=False, name=None):
        items.setdefault(episode_id, []).append(item)
    return items


def _indexed_drama(path: Path) -> tuple[pd.DataFrame, dict[str, list[list]]]:
    table = pd.read_parquet(path)
    return table, kept_items(table)


#: Beside the clip manifest: what it was built from, so a refresh with nothing new skips reading
#: every episode's measurements (:func:`pipeline.stage.is_up_to_date`).
CLIP_MANIFEST_STAMP = ".clips.inputs.json"


def build_clip_manifest(
    data_root: Path, config: CaptionConfig, identity: dict | None = None
) -> Path | None:
    """The clip manifest of the corpus from ``segments.parquet`` (kept rows) and the measurement
    tables; clips that cannot be captioned go to ``clips_rejected.parquet`` with their reason."""
    data_root = Path(data_root)
    layout = DataRoot(data_root)
    segments_path = layout.segments_table
    if not segments_path.exists():
        return None
    captions = layout.all_episode_captions()
    inputs = {
        "files": file_states([segments_path, *captions]),
        "config": config.model_dump(mode="json"),
        "identity": identity or {},
        "version": CAPTION_VERSION,
    }
    stamp = layout.manifests / CLIP_MANIFEST_STAMP
    outputs = [layout.clips_table, layout.rejected_clips_table]
    if is_up_to_date(stamp, inputs, outputs):
        log.info("clip manifest: inputs unchanged -> %s", layout.clips_table)
        return layout.clips_table
    segments = pd.read_parquet(segments_path)
    segments = segments[segments["kept"].fillna(False).astype(bool)]
    tables = [pd.read_parquet(p) for p in captions]
    tables = [t for t in tables if len(t)]
    if segments.empty or not tables:
        return None
    measured = pd.concat(tables, ignore_index=True).drop_duplicates("segment_id", keep="last")
    joined = segments.merge(measured, on="segment_id", how="inner", suffixes=("", "_measured"))
    if joined.empty:
        return None
    joined = joined.sort_values("segment_id").reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "clip_id": joined["segment_id"].astype(str),
            "audio_path": [
                os.path.relpath(data_root / p, layout.manifests) for p in joined["clip_path"]
            ],
            "text": joined["text"],
            "episode_start_s": joined["start_s"],
            "episode_end_s": joined["end_s"],
        }
    )
    for col in PROVENANCE_COLUMNS:
        if col in joined.columns and col not in frame.columns:
            frame[col] = joined[col].to_numpy()
    for col in MEASURE_COLUMNS + EMOTION_COLUMNS:
        frame[col] = joined[col].to_numpy() if col in joined.columns else None
    frame["read_error"] = frame["read_error"].fillna("")
    described = describe(frame, config)
    described["caption_stage_version"] = CAPTION_VERSION
    described["measure_identity"] = short_hash(identity or {})
    ok = described["caption_status"] == "ok"
    write_parquet(
        layout.rejected_clips_table,
        _storable(described.loc[~ok, ["clip_id", "audio_path", "caption_status"]]),
    )
    out = write_parquet(layout.clips_table, _storable(described[ok].reset_index(drop=True)))
    write_stamp(stamp, inputs, outputs)
    log.info(
        "clip manifest: %d clips (%d without a caption) -> %s", int(ok.sum()), int((~ok).sum()), out
    )
    return out


def caption_stage(settings, context: StageContext) -> Caption:
    """Runner factory: ``("caption", caption_stage)`` in ``pipeline.runner.PIPELINE`` after consistency."""
    return Caption(config_from_settings(settings), context=context, settings=settings)
