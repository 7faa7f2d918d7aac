"""What the API routes and the page share: validated searches over a ``Searcher``, as response records.

Every refusal is an :class:`ApiError` (HTTP status + one-line reason); the routes turn it into JSON, the
page into a message.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import pandas as pd

from fsclap.audio import AudioError, audio_duration
from fsclap.manifest import ATTRIBUTE_LEVELS
from fsclap.web.models import (
    CaptionMatch,
    ClipHit,
    ClipInfo,
    Limits,
    SearchResponse,
    SimilarResponse,
)
from model.retrieval import AUDIO_QUERY_SUFFIXES, Result, Searcher

# API filter name -> the clip manifest columns that may hold it (the first one an index has is used)
FILTER_COLUMNS = {
    "gender": ("gender",),
    "pitch": ("pitch",),
    "speed": ("speed",),
    "energy": ("energy",),
    "emotion": ("emotion",),
    "language": ("language", "language_detected"),
    "drama": ("drama_id",),
}
MEASURED_COLUMNS = (
    "duration_s",
    "f0_median_hz",
    "f0_range_semitones",
    "speech_rate",
    "rms_dbfs",
    "voiced_fraction",
)
# content types a browser or client may send for an audio upload (anything audio/* is accepted too)
UPLOAD_TYPES = {
    "video/mp4",
    "video/webm",
    "video/ogg",
    "application/ogg",
    "video/x-matroska",
    "video/quicktime",
}
SUFFIX_BY_TYPE = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "application/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/aac": ".aac",
    "audio/webm": ".webm",
    "video/webm": ".webm",
    "video/mp4": ".mp4",
    "audio/opus": ".opus",
}


class ApiError(Exception):
    """A refused request: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def clip_url(clip_id: str, suffix: str = "") -> str:
    return f"/clips/{quote(str(clip_id), safe='')}{suffix}"


def finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    value = str(value).strip()
    return value or None


class StyleSearch:
    """A searcher with the web's limits, filters and response shapes."""

    def __init__(self, searcher: Searcher, limits: Limits | None = None):
        self.searcher = searcher
        self.index = searcher.index
        self.limits = limits or Limits()
        has = set(self.index.clips.columns)
        self.columns = {
            name: next(c for c in cols if c in has)
            for name, cols in FILTER_COLUMNS.items()
            if any(c in has for c in cols)
        }
        facets = self.index.facets(self.columns.values())
        self.facets = {
            name: facets[column] for name, column in self.columns.items() if facets.get(column)
        }

    # -- validation ---------------------------------------------------------------------------
    def parse_filters(self, raw: dict[str, list[str] | None]) -> dict[str, list[str]]:
        """``{filter name: values}`` from query parameters (repeatable, or comma-separated)."""
        out: dict[str, list[str]] = {}
        for name, values in raw.items():
            if name not in FILTER_COLUMNS:
                raise ApiError(
                    400, f"unknown filter {name!r} (filters: {', '.join(FILTER_COLUMNS)})"
                )
            parts = [
                p.strip().lower() for v in values or [] for p in str(v).split(",") if p.strip()
            ]
            if not parts:
                continue
            if len(parts) > self.limits.max_filter_values or any(len(p) > 200 for p in parts):
                raise ApiError(
                    422,
                    f"filter {name!r}: at most {self.limits.max_filter_values} values of "
                    "up to 200 characters",
                )
            if name not in self.columns:
                raise ApiError(400, f"this index has no {name!r} information to filter on")
            out[name] = sorted(set(parts))
        return out

    def _by_column(self, filters: dict[str, list[str]]) -> dict[str, list[str]]:
        return {self.columns[name]: values for name, values in filters.items()}

    def _allowed(self, filters: dict[str, list[str]]):
        mask = self.index.select(self._by_column(filters))
        return mask, (len(self.index) if mask is None else int(mask.sum()))

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise ApiError(422, f"k must be between 1 and {self.limits.max_k}")

    def check_query(self, q: str | None) -> str:
        query = " ".join(str(q or "").split())
        if not query:
            raise ApiError(
                422, "empty query: describe a speaking style, e.g. 'a sad woman speaking slowly'"
            )
        if len(query) > self.limits.max_query_chars:
            raise ApiError(
                422,
                f"query is {len(query)} characters long; the limit is {self.limits.max_query_chars}",
            )
        return query

    # -- searches -----------------------------------------------------------------------------
    def text_search(
        self, q: str | None, k: int, rerank: int, filters: dict[str, list[str]]
    ) -> SearchResponse:
        start = time.perf_counter()
        query = self.check_query(q)
        self._check_k(k)
        if not 0 <= rerank <= self.limits.max_rerank:
            raise ApiError(422, f"rerank must be between 0 and {self.limits.max_rerank}")
        if rerank and not self.searcher.model.has_pair_scoring:
            raise ApiError(
                400,
                "this index's model has no pair scoring (trained without fusion or pair loss): "
                "drop rerank",
            )
        _, matching = self._allowed(filters)
        try:
            results = self.searcher.search_text(
                query, k, rerank=rerank, filters=self._by_column(filters)
            )
        except AudioError as exc:  # a shortlisted clip's audio vanished while re-ranking
            raise ApiError(500, f"re-ranking failed: {_one_line(exc)}") from None
        return SearchResponse(
            query=query,
            k=k,
            rerank=rerank,
            filters=filters,
            matching=matching,
            results=[self.hit(r) for r in results],
            took_ms=_ms(start),
        )

    def similar_to_clip(
        self, clip_id: str, k: int, filters: dict[str, list[str]]
    ) -> SimilarResponse:
        start = time.perf_counter()
        self._check_k(k)
        self.row(clip_id)
        _, matching = self._allowed(filters)
        similar, captions = self.searcher.similar_to_clip(
            clip_id, k, filters=self._by_column(filters)
        )
        return self._similar(clip_id, k, filters, matching, similar, captions, start)

    def audio_search(
        self,
        upload: BinaryIO,
        filename: str | None,
        content_type: str | None,
        k: int,
        filters: dict[str, list[str]],
    ) -> SimilarResponse:
        """Similar clips for an uploaded clip: type, size and duration are checked before decoding."""
        start = time.perf_counter()
        self._check_k(k)
        name = Path(filename or "upload").name
        suffix = self._upload_suffix(name, content_type)
        _, matching = self._allowed(filters)
        with tempfile.TemporaryDirectory(prefix="fsclap-upload-") as folder:
            path = Path(folder) / f"upload{suffix}"
            size = _copy_limited(upload, path, self.limits.max_upload_bytes)
            if size == 0:
                raise ApiError(400, "the uploaded file is empty")
            try:
                seconds = audio_duration(path)
                if seconds > self.limits.max_upload_seconds:
                    raise ApiError(
                        422,
                        f"the upload is {seconds:.0f} s long; the limit is "
                        f"{self.limits.max_upload_seconds:.0f} s",
                    )
                similar, captions = self.searcher.search_audio(
                    path,
                    k,
                    filters=self._by_column(filters),
                    max_seconds=self.limits.max_upload_seconds,
                )
            except AudioError as exc:
                raise ApiError(
                    422, f"cannot decode {name}: {_one_line(exc).replace(path.name, name)}"
                ) from None
        return self._similar(name, k, filters, matching, similar, captions, start)

    def _upload_suffix(self, name: str, content_type: str | None) -> str:
        ctype = (content_type or "").split(";")[0].strip().lower()
        suffix = Path(name).suffix.lower()
        typed = ctype.startswith("audio/") or ctype in UPLOAD_TYPES
        if not typed and not (
            ctype in ("", "application/octet-stream") and suffix in AUDIO_QUERY_SUFFIXES
        ):
            raise ApiError(
                415,
                f"unsupported upload type {ctype or 'unknown'!r}: send an audio file "
                "(wav, flac, ogg, mp3, m4a, webm, ...)",
            )
        if suffix in AUDIO_QUERY_SUFFIXES:
            return suffix
        return SUFFIX_BY_TYPE.get(
            ctype, ".bin"
        )  # ffmpeg probes the format of anything not read by soundfile

    def _similar(self, source, k, filters, matching, similar, captions, start) -> SimilarResponse:
        return SimilarResponse(
            source=source,
            k=k,
            filters=filters,
            matching=matching,
            similar=[self.hit(r) for r in similar],
            captions=[CaptionMatch(caption=c, score=s) for c, s in captions],
            took_ms=_ms(start),
        )

    # -- records ------------------------------------------------------------------------------
    def row(self, clip_id: str) -> pd.Series:
        row = self.index.row_of(clip_id)
        if row is None:
            raise ApiError(404, f"no clip {clip_id!r} in the index")
        return self.index.clips.iloc[row]

    def hit(self, result: Result) -> ClipHit:
        return self._hit(self.row(result.clip_id), result.rank, result.score)

    def hit_for(self, clip_id: str) -> ClipHit:
        """A clip as a result-list entry of its own (the source of "more like this")."""
        return self._hit(self.row(clip_id), 0, 1.0)

    def _hit(self, row: pd.Series, rank: int, score: float) -> ClipHit:
        clip_id = str(row["clip_id"])
        return ClipHit(
            rank=rank,
            score=score,
            clip_id=clip_id,
            caption=str(row["caption"]),
            audio_url=clip_url(clip_id, "/audio"),
            attributes=self.attributes(row),
            measured=self.measured(row),
            speaker_id=_text(row.get("speaker_id")),
            drama=_text(row.get("drama_id")),
            language=_text(row.get(self.columns.get("language", "language"))),
            start_s=finite(row.get("start_s")),
            end_s=finite(row.get("end_s")),
        )

    def clip_info(self, clip_id: str) -> ClipInfo:
        row = self.row(clip_id)
        shown = {"clip_id", "caption", "audio_path", *ATTRIBUTE_LEVELS, *MEASURED_COLUMNS}
        metadata = json.loads(
            row.drop(labels=[c for c in row.index if c in shown]).to_json(
                date_format="iso", default_handler=str
            )
        )
        return ClipInfo(
            clip_id=str(row["clip_id"]),
            caption=str(row["caption"]),
            audio_url=clip_url(clip_id, "/audio"),
            audio_path=str(row["audio_path"]),
            attributes=self.attributes(row),
            measured=self.measured(row),
            metadata=metadata,
        )

    @staticmethod
    def attributes(row: pd.Series) -> dict[str, str]:
        return {c: v for c in ATTRIBUTE_LEVELS if (v := _text(row.get(c)))}

    @staticmethod
    def measured(row: pd.Series) -> dict[str, float]:
        out = {c: v for c in MEASURED_COLUMNS if (v := finite(row.get(c))) is not None}
        if "duration_s" not in out:
            start, end = finite(row.get("start_s")), finite(row.get("end_s"))
            if start is not None and end is not None and end > start:
                out["duration_s"] = end - start
        return out


def _copy_limited(source: BinaryIO, path: Path, limit: int) -> int:
    """Copy an upload to ``path``; refuse it (413) once it passes ``limit`` bytes."""
    size = 0
    with open(path, "wb") as out:
        while block := source.read(1 << 20):
            size += len(block)
            if size > limit:
                raise ApiError(
                    413, f"the upload is larger than the limit of {limit / 2**20:.0f} MiB"
                )
            out.write(block)
    return size


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 1)
