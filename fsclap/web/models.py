"""Request limits and the JSON bodies of the HTTP API (they make up the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from model.retrieval import MAX_QUERY_CHARS


class Limits(BaseModel):
    """Input limits; anything beyond them is refused with a 4xx and a one-line reason."""

    max_query_chars: int = MAX_QUERY_CHARS
    max_k: int = 100
    max_rerank: int = 50
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_seconds: float = 600.0
    max_filter_values: int = 50


class ClipHit(BaseModel):
    """One clip in a result list."""

    rank: int = Field(description="1-based position in the result list.")
    score: float = Field(description="Cosine similarity to the query (pair score when re-ranked).")
    clip_id: str
    caption: str
    audio_url: str = Field(description="Where to stream the clip (HTTP range requests supported).")
    attributes: dict[str, str] = Field(
        description="Style labels: gender, pitch, speed, energy, emotion."
    )
    measured: dict[str, float] = Field(
        description="Measured numbers, e.g. f0_median_hz, speech_rate, rms_dbfs."
    )
    speaker_id: str | None = None
    drama: str | None = None
    language: str | None = None
    start_s: float | None = Field(
        None, description="Start of the clip within its audio file, when a segment."
    )
    end_s: float | None = None


class SearchResponse(BaseModel):
    query: str
    k: int
    rerank: int
    filters: dict[str, list[str]]
    matching: int = Field(description="How many indexed clips satisfy the filters.")
    results: list[ClipHit]
    took_ms: float


class CaptionMatch(BaseModel):
    caption: str
    score: float


class SimilarResponse(BaseModel):
    """Audio query (an upload or an indexed clip): similar clips and the descriptions that match it."""

    source: str = Field(description="The indexed clip id, or the uploaded file's name.")
    k: int
    filters: dict[str, list[str]]
    matching: int
    similar: list[ClipHit]
    captions: list[CaptionMatch]
    took_ms: float


class ClipInfo(BaseModel):
    clip_id: str
    caption: str
    audio_url: str
    audio_path: str
    attributes: dict[str, str]
    measured: dict[str, float]
    metadata: dict[str, Any] = Field(description="Every other manifest column of the clip.")


class FacetValue(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    """Filter names and the values the index holds for them (with clip counts)."""

    filters: dict[str, list[FacetValue]]


class Health(BaseModel):
    status: str
    clips: int


class IndexInfo(BaseModel):
    count: int
    kind: str
    dim: int
    created: str | None = None
    updated: str | None = None


class ModelInfo(BaseModel):
    fingerprint: str
    backbone: str | None = None
    pair_rerank: bool = Field(
        description="Whether /search accepts rerank > 0 (the model has pair scoring)."
    )


class Version(BaseModel):
    fsclap: str
    model: ModelInfo
    index: IndexInfo


class ErrorBody(BaseModel):
    error: str = Field(description="One-line reason.")
