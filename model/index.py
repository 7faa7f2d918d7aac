"""A searchable index of clip embeddings (FAISS), built once per checkpoint.

Layout of ``INDEX_DIR``::

    index.json      format version, model fingerprint, dimension, kind, counts (written last)
    clips.parquet   one row per indexed clip (clip manifest columns), row i = vector i
    audio.faiss     audio embeddings of the clips (text->audio and audio->audio search)
    text.faiss      caption embeddings (audio->text search)

Exact inner-product search (``IndexFlatIP``) for small corpora, HNSW for large ones; vectors are
L2-normalised, so inner product is cosine similarity. New clips can be added incrementally.
HNSW's search breadth ``ef_search`` is calibrated at build time (and after each add): the smallest
breadth that finds ``TARGET_RECALL`` of the exact top-10 for a sample of the corpus's own cross-modal
queries, recorded with the measured recall in index.json; it can be fixed at build time or overridden
when opening. How much breadth is needed depends on the data (benchmarks/retrieval_scale.py: little for
vectors of low intrinsic dimension such as a trained model's embeddings, a lot for structureless random
vectors).
An index remembers the fingerprint of the checkpoint that embedded it and refuses queries from
another model.

Attribute filters (``select`` + ``search(..., allowed=mask)``) are exact for both kinds: the allowed rows
are scored by brute force over the flat vectors (an HNSW index keeps them in its storage), so a filtered
result is always the best-scoring set of clips that satisfy the filter, however rare the filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.errors import FsclapError
from fsclap.io import atomic_path, write_json, write_parquet
from fsclap.log import get_logger
from fsclap.manifest import normalise_caption

FORMAT_VERSION = 1
EXACT_MAX_ITEMS = 100_000  # above this, "auto" builds HNSW
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # where calibration starts
# calibration: the smallest efSearch (doubling up to the cap) finding this share of the exact top-10
TARGET_RECALL = 0.95
MAX_EF_SEARCH = 4096
CALIBRATION_QUERIES = 256

log = get_logger("model.index")


class IndexError_(FsclapError):
    """The index is missing, corrupt, or was built with another model."""


def _faiss():
    import faiss

    return faiss


def new_vector_index(dim: int, kind: str):
    faiss = _faiss()
    if kind == "exact":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH  # ClipIndex calibrates it once the vectors are in
        return index
    raise FsclapError(f"unknown index kind {kind!r} (exact | hnsw | auto)")


def check_ef_search(ef_search: int) -> int:
    if not isinstance(ef_search, int) or isinstance(ef_search, bool) or ef_search < 1:
        raise FsclapError(f"ef_search must be a positive integer, got {ef_search!r}")
    return ef_search


def hnsw_recall(index, queries: np.ndarray, truth: np.ndarray, ef_search: int) -> float:
    """Share of the exact top-k (``truth``) that an HNSW index returns at this search breadth."""
    index.hnsw.efSearch = ef_search
    _, found = index.search(queries, truth.shape[1])
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())])
    )


def exact_top(index, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows of an HNSW index's own vectors (brute force over its flat storage)."""
    return _faiss().downcast_index(index.storage).search(queries, min(k, index.ntotal))[1]


def calibrate_ef_search(
    index,
    queries: np.ndarray,
    truth: np.ndarray,
    start: int = HNSW_EF_SEARCH,
    max_ef: int = MAX_EF_SEARCH,
    target: float | None = None,
) -> tuple[int, float]:
    """The smallest efSearch in ``start, 2*start, ... max_ef`` whose recall against the exact top-k
    (``truth``, from :func:`exact_top`) reaches ``target`` (or ``max_ef``), and that recall.

    How far a graph search gets depends on the data: embeddings of a trained model (low intrinsic
    dimension) need little breadth, structureless random vectors a lot (benchmarks/retrieval_scale.py)."""
    target = TARGET_RECALL if target is None else target
    ef = start
    while True:
        recall = hnsw_recall(index, queries, truth, ef)
        if recall >= target or ef >= max_ef:
            return ef, recall
        ef = min(2 * ef, max_ef)


def choose_kind(kind: str, n_items: int) -> str:
    if kind == "auto":
        return "exact" if n_items <= EXACT_MAX_ITEMS else "hnsw"
    return kind


def _as_matrix(vectors, dim: int | None = None) -> np.ndarray:
    mat = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if mat.ndim != 2 or (dim is not None and mat.shape[1] != dim):
        raise FsclapError(f"expected vectors of shape (n, {dim or 'd'}), got {mat.shape}")
    if not np.isfinite(mat).all():
        raise FsclapError("embeddings contain NaN or inf")
    return mat


@dataclass
class SearchHit:
    row: int
    score: float


class ClipIndex:
    """Audio and caption embeddings of a set of clips, with their metadata."""

    def __init__(self, root: Path, meta: dict, clips: pd.DataFrame, audio_index, text_index):
        self.root = Path(root)
        self.meta = meta
        self.clips = clips
        self.audio_index = audio_index
        self.text_index = text_index
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._codes: dict[
            str, pd.Categorical
        ] = {}  # column -> normalised values, for filters and facets
        self._row_by_id: dict[str, int] | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        root: str | Path,
        clips: pd.DataFrame,
        audio_vectors,
        text_vectors,
        model_fingerprint: str,
        model_info: dict | None = None,
        kind: str = "auto",
        ef_search: int | None = None,
    ) -> ClipIndex:
        audio = _as_matrix(audio_vectors)
        text = _as_matrix(text_vectors, audio.shape[1])
        if not (len(audio) == len(text) == len(clips)):
            raise FsclapError("clips, audio vectors and text vectors must have the same length")
        kind = choose_kind(kind, len(clips))
        dim = audio.shape[1]
        fixed_ef = None if ef_search is None else check_ef_search(ef_search)
        audio_index, text_index = new_vector_index(dim, kind), new_vector_index(dim, kind)
        audio_index.add(audio)
        text_index.add(text)
        meta = {
            "format_version": FORMAT_VERSION,
            "model_fingerprint": model_fingerprint,
            "model": model_info or {},
            "dim": dim,
            "kind": kind,
            "count": len(clips),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        index = cls(Path(root), meta, clips.reset_index(drop=True), audio_index, text_index)
        if kind == "hnsw":
            index.calibrate(fixed_ef)
        index.save()
        return index

    def calibrate(self, ef_search: int | None = None) -> None:
        """HNSW only: measure recall@10 against exact search on a sample of the corpus's own cross-modal
        queries (captions against the audio vectors, audio against the captions) and keep the smallest
        search breadth reaching ``TARGET_RECALL`` (or ``ef_search`` when given, recall measured all the same).
        The choice and the recall are recorded in index.json."""
        n = len(self)
        rows = np.sort(
            np.random.default_rng(0).choice(n, size=min(n, CALIBRATION_QUERIES), replace=False)
        )
        text_queries = self.text_index.reconstruct_batch(rows)
        audio_queries = self.audio_index.reconstruct_batch(rows)
        start, cap = (
            (ef_search, ef_search) if ef_search is not None else (HNSW_EF_SEARCH, MAX_EF_SEARCH)
        )
        k = min(10, n)
        searches = {
            "text_to_audio": (self.audio_index, text_queries),
            "audio_to_text": (self.text_index, audio_queries),
        }
        truths = {name: exact_top(index, queries, k) for name, (index, queries) in searches.items()}
        found = {
            name: calibrate_ef_search(index, queries, truths[name], start=start, max_ef=cap)
            for name, (index, queries) in searches.items()
        }
        ef = max(e for e, _ in found.values())  # one breadth for both directions: the larger need
        recall = {
            name: round(
                r
                if e == ef
                else hnsw_recall(searches[name][0], searches[name][1], truths[name], ef),
                3,
            )
            for name, (e, r) in found.items()
        }
        self.meta.update(
            ef_search=ef,
            ef_search_auto=ef_search is None,
            calibration={"queries": len(rows), f"recall@{k}": recall, "target": TARGET_RECALL},
        )
        self.set_ef_search(ef)
        worst = min(recall.values())
        if worst < TARGET_RECALL:
            log.warning(
                "HNSW finds %.1f%% of the exact top-%d at efSearch %d on this corpus (target %.1f%%): "
                "search with --ef-search higher, or rebuild with --kind exact",
                100 * worst,
                k,
                ef,
                100 * TARGET_RECALL,
            )
        else:
            log.info(
                "HNSW efSearch %d: recall@%d %.3f (text->audio) / %.3f (audio->text) against exact search",
                ef,
                k,
                recall["text_to_audio"],
                recall["audio_to_text"],
            )

    def add(self, clips: pd.DataFrame, audio_vectors, text_vectors, model_fingerprint: str) -> int:
        """Append clips not yet indexed (by ``clip_id``); returns how many were added."""
        self.check_model(model_fingerprint)
        audio = _as_matrix(audio_vectors, self.dim)
        text = _as_matrix(text_vectors, self.dim)
        known = set(self.clips["clip_id"].astype(str))
        new = ~clips["clip_id"].astype(str).isin(known).to_numpy()
        if not new.any():
            return 0
        self.audio_index.add(audio[new])
        self.text_index.add(text[new])
        self.clips = pd.concat([self.clips, clips[new]], ignore_index=True)
        self._reset_caches()
        self.meta["count"] = len(self.clips)
        self.meta["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if self.meta["kind"] == "hnsw":  # a grown corpus may need another search breadth
            self.calibrate(
                None if self.meta.get("ef_search_auto", True) else self.meta["ef_search"]
            )
        self.save()
        return int(new.sum())

    def save(self) -> None:
        faiss = _faiss()
        self.root.mkdir(parents=True, exist_ok=True)
        for name, index in (("audio.faiss", self.audio_index), ("text.faiss", self.text_index)):
            with atomic_path(self.root / name) as tmp:
                faiss.write_index(index, str(tmp))
        write_parquet(self.root / "clips.parquet", self.clips)
        write_json(self.root / "index.json", self.meta)  # last: marks a complete index

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, ef_search: int | None = None) -> ClipIndex:
        """Open an index; ``ef_search`` (HNSW only) overrides the search breadth stored at build time."""
        faiss = _faiss()
        root = Path(root)
        meta_path = root / "index.json"
        if not meta_path.is_file():
            raise IndexError_(
                f"no index at {root} (index.json missing; build one with 'fsclap index')"
            )
        try:
            meta = json.loads(meta_path.read_text())
            clips = pd.read_parquet(root / "clips.parquet")
            audio_index = faiss.read_index(str(root / "audio.faiss"))
            text_index = faiss.read_index(str(root / "text.faiss"))
        except Exception as exc:
            raise IndexError_(
                f"index at {root} is unreadable: {str(exc).splitlines()[0]}"
            ) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexError_(
                f"index at {root} has format {meta.get('format_version')}, expected {FORMAT_VERSION}"
            )
        if not (audio_index.ntotal == text_index.ntotal == len(clips) == meta["count"]):
            raise IndexError_(
                f"index at {root} is inconsistent (vector and clip counts differ): rebuild it"
            )
        index = cls(root, meta, clips, audio_index, text_index)
        index.set_ef_search(
            ef_search if ef_search is not None else meta.get("ef_search", HNSW_EF_SEARCH)
        )
        return index

    def set_ef_search(self, ef_search: int) -> None:
        """HNSW search breadth: higher finds more of the exact top-k, more slowly (no effect on exact indexes)."""
        ef_search = check_ef_search(ef_search)
        for index in (self.audio_index, self.text_index):
            if isinstance(index, _faiss().IndexHNSW):
                index.hnsw.efSearch = ef_search

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return len(self.clips)

    def check_model(self, model_fingerprint: str) -> None:
        if model_fingerprint != self.meta["model_fingerprint"]:
            raise IndexError_(
                f"index at {self.root} was built with checkpoint {self.meta['model_fingerprint'][:12]}, "
                f"the query model is {model_fingerprint[:12]}: rebuild the index or use that checkpoint"
            )

    # -- metadata ---------------------------------------------------------------------------
    def row_of(self, clip_id: str) -> int | None:
        """Row of a clip id, or None when the index does not hold it."""
        if self._row_by_id is None:
            self._row_by_id = {str(c): i for i, c in enumerate(self.clips["clip_id"].astype(str))}
        return self._row_by_id.get(str(clip_id))

    def _normalised(self, column: str) -> pd.Categorical:
        """A column's values, stripped and lower-cased, as categories (computed once per column)."""
        if column not in self._codes:
            if column not in self.clips.columns:
                raise FsclapError(f"cannot filter on {column!r}: the index has no such column")
            values = self.clips[column].astype("string").str.strip().str.lower()
            self._codes[column] = pd.Categorical(
                values.mask(values == "").to_numpy(dtype=object, na_value=None)
            )
        return self._codes[column]

    def select(self, filters: Mapping[str, str | Iterable[str]] | None) -> np.ndarray | None:
        """Boolean row mask for ``{column: allowed value(s)}`` (any value within a column, every column).

        Values compare case-insensitively. None when there is nothing to filter on.
        """
        mask = None
        for column, values in (filters or {}).items():
            wanted = [values] if isinstance(values, str) else list(values or [])
            wanted = {str(v).strip().lower() for v in wanted if str(v).strip()}
            if not wanted:
                continue
            cats = self._normalised(column)
            codes = [cats.categories.get_loc(v) for v in wanted if v in cats.categories]
            keep = np.isin(cats.codes, codes)
            mask = keep if mask is None else mask & keep
        return mask

    def facets(self, columns: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
        """Distinct non-empty values (normalised) and their counts, for each column the index has."""
        out = {}
        for column in columns:
            if column not in self.clips.columns:
                continue
            cats = self._normalised(column)
            counts = np.bincount(cats.codes[cats.codes >= 0], minlength=len(cats.categories))
            out[column] = [(str(v), int(n)) for v, n in zip(cats.categories, counts) if n]
        return out

    def vector(self, row: int, target: str = "audio") -> np.ndarray:
        """The stored (normalised) embedding of one row."""
        index = self.audio_index if target == "audio" else self.text_index
        return np.asarray(index.reconstruct(int(row)), dtype=np.float32)

    # -- searching --------------------------------------------------------------------------
    def search(
        self, query_vectors, k: int, target: str = "audio", allowed=None
    ) -> list[list[SearchHit]]:
        """Top-``k`` rows per query against the ``audio`` or ``text`` (caption) embeddings.

        ``allowed``: optional boolean mask over rows (e.g. from :meth:`select`); only those rows are
        ranked, exactly (see the module docstring).
        """
        index = self.audio_index if target == "audio" else self.text_index
        queries = _as_matrix(np.atleast_2d(query_vectors), self.dim)
        if allowed is None:
            k = min(k, len(self))
            scores, rows = index.search(queries, k)
        else:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (len(self),):
                raise FsclapError(
                    f"filter mask has shape {allowed.shape}, the index has {len(self)} rows"
                )
            k = min(k, int(allowed.sum()))
            if k <= 0:
                return [[] for _ in range(len(queries))]
            scores, rows = self._masked_search(index, queries, k, allowed)
        # deterministic ties (e.g. the same audio indexed twice): equal scores in row order
        return [
            sorted(
                (SearchHit(int(r), float(s)) for r, s in zip(rs, ss) if r >= 0),
                key=lambda h: (-h.score, h.row),
            )
            for rs, ss in zip(rows, scores)
        ]

    @staticmethod
    def _masked_search(index, queries: np.ndarray, k: int, allowed: np.ndarray):
        """Brute-force search restricted to the allowed rows (FAISS ID selector over the flat vectors)."""
        faiss = _faiss()
        flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
        bitmap = np.packbits(
            allowed, bitorder="little"
        )  # must outlive the search: the selector points into it
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        return flat.search(queries, k, params=faiss.SearchParameters(sel=selector))

    def search_captions(self, query_vector, k: int) -> list[tuple[str, float, int]]:
        """Best-matching distinct captions for one query: ``(caption, score, row)``."""
        fetch = min(len(self), 4 * k)
        while True:
            seen: set[str] = set()
            out: list[tuple[str, float, int]] = []
            for hit in self.search(query_vector, fetch, target="text")[0]:
                caption = str(self.clips.at[hit.row, "caption"])
                key = normalise_caption(caption)
                if key not in seen:
                    seen.add(key)
                    out.append((caption, hit.score, hit.row))
            if len(out) >= k or fetch >= len(self):
                return out[:k]
            fetch = min(len(self), 4 * fetch)
