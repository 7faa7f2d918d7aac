"""Sentence segments: the record every diarizer returns, sentence-length shaping, clip cutting,
and the ``segments`` table (``DIR/manifests/segments.parquet``).

A diarizer turns a vocal track into :class:`Segment` records (start, end, episode-local speaker
label, text when the backend transcribes). :func:`shape_segments` then brings them to sentence
length: pieces shorter than ``min_s`` are merged into a same-speaker neighbour across a short pause,
pieces longer than ``max_s`` are cut at the quietest point, and what is still too short is kept in
the table with ``reason = too_short`` (never cut as a clip).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fsclap.audio import write_audio

REASON_TOO_SHORT = "too_short"
REASON_OVERLAP = "overlap"


@dataclass(frozen=True)
class SegmentRow:
    """One row of the segments tables: ``DIR/segments/<drama>/<episode>.parquet`` (what diarize
    writes: the fields up to ``diarizer``, later ones empty) and ``DIR/manifests/segments.parquet``
    (every field, after the consistency stage). Field order is the tables' column order."""

    segment_id: str  # <episode id>_<index>
    drama_id: str
    episode_id: str
    episode_index: int | None
    start_s: float  # on the episode's vocal track
    end_s: float
    duration_s: float
    text: str | None  # the transcript, when the diarizer transcribes
    episode_speaker: str  # the diarizer's label within the episode
    embedding_model: str
    embedding_path: str  # the episode's embeddings (.npy), relative to the data root
    embedding_row: int
    clip_path: str | None  # the cut clip; None for segments never cut (see ``reason``)
    reason: str | None  # overlap | too_short | a consistency reason; None: a candidate clip
    diarizer: str
    # consistency
    speaker_id: str | None = None  # drama-level speaker
    consistency: float | None = None  # s-bar, eq. 4
    cluster_size: int | None = None
    kept: bool = False


# What the per-episode diarize output holds (speaker_id / consistency / kept come later).
EPISODE_COLUMNS = [
    f.name
    for f in dataclasses.fields(SegmentRow)
    if f.name not in ("speaker_id", "consistency", "cluster_size", "kept")
]
# Column order of DIR/manifests/segments.parquet (the Data root contract plus provenance).
SEGMENT_COLUMNS = [
    "segment_id",
    "drama_id",
    "episode_id",
    "episode_index",
    "start_s",
    "end_s",
    "duration_s",
    "text",
    "episode_speaker",
    "speaker_id",
    "embedding_model",
    "embedding_path",
    "embedding_row",
    "clip_path",
    "consistency",
    "cluster_size",
    "kept",
    "reason",
    "diarizer",
]


def segment_frame(
    rows: Iterable[SegmentRow], columns: Sequence[str] = EPISODE_COLUMNS
) -> pd.DataFrame:
    """A segments table of ``rows`` with ``columns`` in order and the tables' dtypes."""
    return typed(
        pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=SEGMENT_COLUMNS), columns
    )


@dataclass(frozen=True)
class Segment:
    """One stretch of one speaker in one episode (times in seconds on the vocal track)."""

    start_s: float
    end_s: float
    speaker: str  # episode-local label from the diarizer ("S0", "S1", ...)
    text: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class SegmentationConfig(BaseModel):
    """Sentence-length shaping shared by every diarizer backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_s: float = Field(
        1.0, gt=0, description="Shorter segments are merged into a neighbour or marked too_short."
    )
    max_s: float = Field(15.0, gt=0, description="Longer segments are cut at the quietest point.")
    merge_gap_s: float = Field(
        0.5, ge=0, description="Largest pause bridged when merging same-speaker pieces."
    )

    @model_validator(mode="after")
    def _check(self):
        if self.max_s < 2 * self.min_s:
            raise ValueError(
                f"max_s ({self.max_s}) must be at least 2 × min_s ({self.min_s}) so long segments can be cut"
            )
        return self


def join_text(left: str | None, right: str | None) -> str | None:
    """Concatenate transcripts: no space between CJK characters, one space otherwise."""
    if not left:
        return right or left
    if not right:
        return left
    cjk = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
    sep = "" if cjk.match(left[-1]) or cjk.match(right[0]) else " "
    return left + sep + right


def merge_short(
    segments: Sequence[Segment], min_s: float, max_s: float, merge_gap_s: float
) -> list[Segment]:
    """Merge a piece shorter than ``min_s`` into its same-speaker neighbour when the pause between
    them is at most ``merge_gap_s`` and the result is at most ``max_s`` long."""
    out: list[Segment] = []
    for seg in sorted(segments, key=lambda s: (s.start_s, s.end_s)):
        if out:
            prev = out[-1]
            short = prev.duration_s < min_s or seg.duration_s < min_s
            if (
                short
                and prev.speaker == seg.speaker
                and seg.start_s - prev.end_s <= merge_gap_s
                and max(seg.end_s, prev.end_s) - prev.start_s <= max_s
            ):
                out[-1] = Segment(
                    prev.start_s,
                    max(prev.end_s, seg.end_s),
                    prev.speaker,
                    join_text(prev.text, seg.text),
                )
                continue
        out.append(seg)
    return out


def split_long(
    segments: Iterable[Segment],
    max_s: float,
    min_s: float,
    cut_at: Callable[[float, float], float] | None = None,
) -> list[Segment]:
    """Cut segments longer than ``max_s`` (recursively) at ``cut_at(lo, hi)`` — a time in
    ``[lo, hi]`` chosen by the caller (e.g. the quietest frame) — or in the middle.
    Text cannot be divided without token times, so split pieces of a transcribed segment lose it."""
    out: list[Segment] = []
    stack = list(segments)[::-1]
    while stack:
        seg = stack.pop()
        if seg.duration_s <= max_s:
            out.append(seg)
            continue
        lo, hi = seg.start_s + min_s, seg.end_s - min_s
        # the first part must fit in max_s; the rest is cut again if needed
        hi = min(hi, seg.start_s + max_s)
        cut = cut_at(lo, hi) if cut_at is not None else (lo + hi) / 2
        cut = float(min(max(cut, lo), hi))
        stack.append(Segment(cut, seg.end_s, seg.speaker, None))
        stack.append(Segment(seg.start_s, cut, seg.speaker, None))
    return out


def quietest_point(
    audio: np.ndarray, sr: int, frame_s: float = 0.02
) -> Callable[[float, float], float]:
    """A ``cut_at`` for :func:`split_long`: the centre of the lowest-energy frame in ``[lo, hi]``,
    ties broken towards the middle of the range."""
    hop = max(int(frame_s * sr), 1)
    n = len(audio) // hop
    energy = (
        np.square(audio[: n * hop].astype(np.float64)).reshape(n, hop).mean(axis=1)
        if n
        else np.zeros(0)
    )

    def cut_at(lo: float, hi: float) -> float:
        a, b = int(lo * sr) // hop, int(np.ceil(hi * sr / hop))
        b = min(b, n)
        if b <= a:
            return (lo + hi) / 2
        window = energy[a:b]
        middle = (b - a - 1) / 2
        order = np.lexsort((np.abs(np.arange(b - a) - middle), window))
        return (a + order[0] + 0.5) * hop / sr

    return cut_at


def shape_segments(
    segments: Sequence[Segment],
    config: SegmentationConfig,
    cut_at: Callable[[float, float], float] | None = None,
) -> list[Segment]:
    """Merge short pieces, then cut long ones (see the module docstring)."""
    merged = merge_short(segments, config.min_s, config.max_s, config.merge_gap_s)
    return split_long(merged, config.max_s, config.min_s, cut_at)


def overlapping(segments: Sequence[Segment]) -> np.ndarray:
    """Which segments overlap another one in time (two voices at once: not one speaker's clip)."""
    n = len(segments)
    flags = np.zeros(n, dtype=bool)
    order = sorted(range(n), key=lambda i: segments[i].start_s)
    latest_end, latest = -np.inf, -1
    for i in order:
        if segments[i].start_s < latest_end - 1e-6:
            flags[i] = True
            flags[latest] = True
        if segments[i].end_s > latest_end:
            latest_end, latest = segments[i].end_s, i
    return flags


def segment_reasons(segments: Sequence[Segment], min_s: float) -> list[str | None]:
    """The reason a segment is out before any speaker check (None: it is a candidate clip)."""
    overlap = overlapping(segments)
    reasons: list[str | None] = []
    for seg, ov in zip(segments, overlap):
        if ov:
            reasons.append(REASON_OVERLAP)
        elif seg.duration_s < min_s:
            reasons.append(REASON_TOO_SHORT)
        else:
            reasons.append(None)
    return reasons


def cut_clip(audio: np.ndarray, sr: int, seg: Segment, path: Path) -> Path:
    """Write ``seg`` of ``audio`` to ``path`` (FLAC/WAV by suffix, 16-bit, atomic)."""
    a = max(int(round(seg.start_s * sr)), 0)
    b = min(int(round(seg.end_s * sr)), len(audio))
    return write_audio(path, np.clip(audio[a:b], -1.0, 1.0), sr, subtype="PCM_16")


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "object")) for c in columns})


_DTYPES = {
    "start_s": "float64",
    "end_s": "float64",
    "duration_s": "float64",
    "embedding_row": "Int64",
    "episode_index": "Int64",
    "consistency": "float64",
    "cluster_size": "Int64",
    "kept": "bool",
}


def typed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` in order and stable dtypes (so empty and full tables agree)."""
    frame = frame.reindex(columns=list(columns))
    for col in columns:
        dtype = _DTYPES.get(col)
        if dtype is not None:
            frame[col] = frame[col].astype(dtype)
        else:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame
