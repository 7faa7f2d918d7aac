"""Full-gallery retrieval metrics with the leak-free evaluation protocol of docs/design.md.

- Every query is ranked against the whole gallery, in chunks of queries so 100k items fit in memory.
- Positives: gallery items whose key (the normalised caption) equals the query's key.
- Ties are pessimistic and deterministic: among equal scores, negatives rank before positives,
  then lower gallery index first. A positive tied with a negative therefore counts against the model.
- R@k: share of queries with at least one positive in the top k.
- AP@10 = (1/min(|P|,10)) * sum_{k<=10} P@k * rel_k; mAP@10 is its mean over queries.
- Percentages are reported with one decimal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fsclap.manifest import normalise_caption
from model.ranking_kernels import scan_columns, scan_rows

DEFAULT_KS = (1, 5, 10)


@dataclass
class RankingResult:
    """Per-query ranking facts from which every metric is derived."""

    first_positive_rank: np.ndarray  # (Q,) 1-based rank of the best-ranked positive
    ap_at: np.ndarray  # (Q,) AP@map_k
    top: np.ndarray  # (Q, top_k) gallery indices of the top results, deterministic order
    n_positives: np.ndarray  # (Q,)
    map_k: int = 10
    n_gallery: int = 0

    def recall_at(self, k: int, mask: np.ndarray | None = None) -> float:
        ranks = self.first_positive_rank if mask is None else self.first_positive_rank[mask]
        return float(np.mean(ranks <= k)) if len(ranks) else float("nan")

    def mean_ap(self, mask: np.ndarray | None = None) -> float:
        ap = self.ap_at if mask is None else self.ap_at[mask]
        return float(np.mean(ap)) if len(ap) else float("nan")

    def summary(
        self, ks: Sequence[int] = DEFAULT_KS, mask: np.ndarray | None = None
    ) -> dict[str, float]:
        """Metrics in percent with one decimal: ``{"R@1": .., "R@5": .., "R@10": .., "mAP@10": ..}``."""
        out = {f"R@{k}": round(100.0 * self.recall_at(k, mask), 1) for k in ks}
        out[f"mAP@{self.map_k}"] = round(100.0 * self.mean_ap(mask), 1)
        return out


def caption_keys(captions: Sequence[str]) -> np.ndarray:
    """Integer ids such that equal normalised captions share an id."""
    ids: dict[str, int] = {}
    return np.array(
        [ids.setdefault(normalise_caption(c), len(ids)) for c in captions], dtype=np.int64
    )


def rank_gallery(
    score_rows: Callable[[int, int], torch.Tensor],
    query_keys: np.ndarray,
    gallery_keys: np.ndarray,
    map_k: int = 10,
    top_k: int = 10,
    chunk_size: int = 256,
) -> RankingResult:
    """Rank every query against the full gallery.

    ``score_rows(start, stop)`` returns the ``(stop-start, N)`` score matrix of queries
    ``start:stop`` against all ``N`` gallery items (higher = more similar). Scores are compared in
    the precision they were computed in (float16/bfloat16 are widened to float32 without rounding),
    so the metric itself adds no rounding. Positives are looked up per query from the gallery's
    key groups, so only a couple of passes over each score chunk are needed.
    """
    query_keys = np.asarray(query_keys)
    gallery_keys = np.asarray(gallery_keys)
    n_queries, n_gallery = len(query_keys), len(gallery_keys)
    result = _empty_result(n_queries, n_gallery, map_k, top_k)
    groups = _KeyGroups(gallery_keys)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        scores = _widened(score_rows(start, stop), (stop - start, n_gallery))
        _rank_rows(scores, query_keys[start:stop], gallery_keys, groups, result, start)
    return result


def rank_both_ways(
    audio_emb: torch.Tensor,
    text_emb: torch.Tensor,
    keys: np.ndarray,
    map_k: int = 10,
    top_k: int = 10,
    chunk_size: int = 256,
    band_cap: int = 32,
) -> tuple[RankingResult, RankingResult]:
    """Audio->text and text->audio rankings of N clips from ONE pass over the N x N score matrix
    (``audio @ text.T`` in row chunks): a2t reads each chunk's rows as :func:`rank_gallery` does; t2a
    reads its columns, so each text query keeps running figures over the chunks:

    - its best positive score and how many positives tie with it (exact, from the chunks);
    - how many audio items score at least that best. The best is only known at the end, so the pass
      counts the items above a bound estimated beforehand (each positive pair's dot product in
      float64, plus the worst rounding a dot product of this length can carry in the embeddings'
      precision) and keeps the few items inside that band; the exact count follows from them;
    - its top ``max(map_k, top_k) + 1`` items.

    A column whose best falls outside its band, whose band holds more than ``band_cap`` items, or
    whose top list ends in a tie is ranked again on its own (``text[j] @ audio.T``, as
    :func:`rank_gallery` would): results always follow the tie rule exactly, and the full matrix
    is computed once instead of twice."""
    keys = np.asarray(keys)
    n = len(keys)
    if len(audio_emb) != n or len(text_emb) != n:
        raise ValueError("audio and text embeddings must have one row per key")
    groups = _KeyGroups(keys)
    a2t = _empty_result(n, n, map_k, top_k)
    depth = min(max(map_k, top_k), n)
    text_t = text_emb.T.contiguous()
    guess, margin = _positive_bounds(audio_emb, text_emb, groups)
    low, high = guess - margin, guess + margin
    above = np.zeros(n, dtype=np.int64)  # per column: audio items scored above ``high``
    band_size = np.zeros(n, dtype=np.int64)
    band_values = np.full((n, band_cap), -np.inf)
    band_rows = np.zeros((n, band_cap), dtype=np.int64)
    top_values = np.full((n, min(depth + 1, n)), -np.inf)
    top_rows = np.zeros(top_values.shape, dtype=np.int64)
    top_filled = np.zeros(n, dtype=np.int64)
    top_last = np.full(n, -np.inf)
    best = torch.full((n,), -torch.inf, dtype=torch.float64)
    best_ties = torch.zeros(n, dtype=torch.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        scores = _widened(audio_emb[start:stop] @ text_t, (stop - start, n))

        rows, cols, chunk = _rank_rows(scores, keys[start:stop], keys, groups, a2t, start)
        scan_columns(
            np.ascontiguousarray(chunk.T),
            start,
            low,
            high,
            above,
            band_size,
            band_values,
            band_rows,
            top_values,
            top_rows,
            top_filled,
            top_last,
        )
        best, best_ties = _merge_best(best, best_ties, scores[rows, cols].double(), cols, n)
    best, best_ties = best.numpy(), best_ties.numpy()
    at_least = above + (band_values >= best[:, None]).sum(axis=1)  # unused slots hold -inf
    order, tied = _order_candidates(top_values, top_rows, keys, keys, depth)
    redo = np.flatnonzero((band_size > band_cap) | (best < low) | (best > high) | tied)
    t2a = _empty_result(n, n, map_k, top_k)
    t2a.first_positive_rank[:] = 1 + at_least - best_ties
    _fill_from_order(t2a, np.arange(n), order, keys, keys, groups.counts_of(keys))
    if len(redo):
        again = rank_gallery(
            lambda s, e: text_emb[redo[s:e]] @ audio_emb.T, keys[redo], keys, map_k, top_k
        )
        t2a.first_positive_rank[redo] = again.first_positive_rank
        t2a.ap_at[redo] = again.ap_at
        t2a.top[redo] = again.top
    return a2t, t2a


class _KeyGroups:
    """Gallery indices grouped by key, to list each query's positives without a dense (Q, N) mask."""

    def __init__(self, gallery_keys: np.ndarray):
        self.order = np.argsort(gallery_keys, kind="stable")
        self.keys, self.starts, self.counts = np.unique(
            gallery_keys[self.order], return_index=True, return_counts=True
        )

    def _slots(self, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's key group and how many gallery items it holds (0: the key is not there)."""
        slot = np.clip(np.searchsorted(self.keys, query_keys), 0, max(len(self.keys) - 1, 0))
        found = self.keys[slot] == query_keys if len(self.keys) else np.zeros(len(query_keys), bool)
        return slot, np.where(found, self.counts[slot], 0)

    def counts_of(self, query_keys: np.ndarray) -> np.ndarray:
        """How many gallery items share each query's key."""
        return self._slots(query_keys)[1]

    def positives(self, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, gallery index) of every positive pair of these queries."""
        slot, count = self._slots(query_keys)
        rows = np.repeat(np.arange(len(query_keys)), count)
        within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return rows, self.order[np.repeat(self.starts[slot], count) + within]


def _empty_result(n_queries: int, n_gallery: int, map_k: int, top_k: int) -> RankingResult:
    return RankingResult(
        first_positive_rank=np.empty(n_queries, dtype=np.int64),
        ap_at=np.empty(n_queries, dtype=np.float64),
        top=np.empty((n_queries, min(top_k, n_gallery)), dtype=np.int64),
        n_positives=np.empty(n_queries, dtype=np.int64),
        map_k=map_k,
        n_gallery=n_gallery,
    )


def _widened(scores: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    scores = scores.detach().to("cpu")
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    if tuple(scores.shape) != shape:
        raise ValueError(f"score_rows returned {tuple(scores.shape)}, expected {shape}")
    return scores


def _rank_rows(
    scores: torch.Tensor,
    keys: np.ndarray,
    gallery_keys: np.ndarray,
    groups: _KeyGroups,
    result: RankingResult,
    start: int,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Fill ``result`` for the queries ``start:start+len(keys)`` whose score rows are ``scores``.

    First positive rank: items scored at least as high as the query's best positive come first,
    except the positives tied with it (itself included). Returns the positive pairs (row within the
    chunk, gallery index) and the scores as a contiguous array (for a scan of its columns)."""
    rows, cols = groups.positives(keys)
    npos = np.bincount(rows, minlength=len(keys))
    if (npos == 0).any():
        raise ValueError(f"{int((npos == 0).sum())} query(ies) have no positive in the gallery")
    rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
    best, tied_positives = _merge_best(
        torch.full((len(keys),), -torch.inf, dtype=scores.dtype),
        torch.zeros(len(keys), dtype=torch.int64),
        scores[rows, cols],
        rows,
        len(keys),
    )
    chunk = np.ascontiguousarray(scores.numpy())
    depth = min(max(result.map_k, result.top.shape[1]), chunk.shape[1])
    at_least, values, indices = scan_rows(chunk, best.numpy(), min(depth + 1, chunk.shape[1]))
    order, tied = _order_candidates(values, indices, keys, gallery_keys, depth)
    for i in np.flatnonzero(tied):  # a tie across the cut: every item that may enter the top
        cand = np.flatnonzero(chunk[i] >= values[i, depth - 1])
        ordered, _ = _order_candidates(
            chunk[i, cand][None], cand[None], keys[i : i + 1], gallery_keys, len(cand)
        )
        order[i] = ordered[0, :depth]
    queries = np.arange(start, start + len(keys))
    result.first_positive_rank[queries] = 1 + at_least - tied_positives.numpy()
    _fill_from_order(result, queries, order, keys, gallery_keys, npos)
    return rows, cols, chunk


def _fill_from_order(
    result: RankingResult,
    queries: np.ndarray,
    order: np.ndarray,
    keys: np.ndarray,
    gallery_keys: np.ndarray,
    npos: np.ndarray,
) -> None:
    """AP@map_k, the top list and the positive counts of ``queries`` from their ordered top items."""
    rel = torch.as_tensor(
        gallery_keys[order[:, : result.map_k]] == keys[:, None], dtype=torch.float64
    )
    precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    denom = torch.as_tensor(np.clip(npos, 1, result.map_k), dtype=torch.float64)
    result.ap_at[queries] = ((precision * rel).sum(1) / denom).numpy()
    result.top[queries] = order[:, : result.top.shape[1]]
    result.n_positives[queries] = npos


def _order_candidates(
    values: np.ndarray,
    indices: np.ndarray,
    query_keys: np.ndarray,
    gallery_keys: np.ndarray,
    depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Order each row's best candidates (``values`` descending, ``depth`` or ``depth + 1`` of them) by
    (-score, positives after negatives, index). Returns the first ``depth`` and whether a row's
    ``depth``-th and next candidates tie (then items outside the candidates may belong in its top:
    the caller ranks that row again from all its scores)."""
    if values.shape[1] > depth:
        tied = values[:, depth] == values[:, depth - 1]
    else:
        tied = np.zeros(len(values), dtype=bool)
    values, indices = values[:, :depth], indices[:, :depth]
    positive = gallery_keys[indices] == query_keys[:, None]
    perm = np.lexsort((indices, positive, -values), axis=-1)
    return np.take_along_axis(indices, perm, axis=1), tied


def _positive_bounds(
    audio_emb: torch.Tensor, text_emb: torch.Tensor, groups: _KeyGroups
) -> tuple[np.ndarray, np.ndarray]:
    """Per text query: its best positive score computed in float64, and a margin for the rounding of
    the same dot products in the embeddings' precision: ``4 * sqrt(d) * eps * |a| * |t|``, four
    times the typical error of a length-``d`` dot product (the worst case, ``d * eps``, would make
    the band too wide to keep; a best outside the band only costs that column a second look)."""
    dim = text_emb.shape[1]
    audio64, text64 = audio_emb.detach().cpu().double(), text_emb.detach().cpu().double()
    guess = np.empty(len(text64))
    by_size: dict[int, list[np.ndarray]] = {}
    for group in np.split(groups.order, groups.starts[1:]):
        by_size.setdefault(len(group), []).append(group)
    for same in by_size.values():
        index = torch.as_tensor(np.stack(same))  # (groups, size): clips sharing a caption
        block = torch.bmm(audio64[index], text64[index].transpose(1, 2))  # [group, audio, text]
        guess[index.numpy()] = block.amax(dim=1).numpy()
    dtype = audio_emb.dtype if audio_emb.is_floating_point() else torch.float32
    scale = float(audio64.norm(dim=1).max()) * text64.norm(dim=1).numpy()
    return guess, 4 * math.sqrt(dim) * torch.finfo(dtype).eps * scale + 1e-30


def _merge_best(
    best: torch.Tensor, ties: torch.Tensor, values: torch.Tensor, cols: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running best positive score per column and how many positives reach it."""
    chunk_best = torch.full((n,), -torch.inf, dtype=values.dtype).scatter_reduce(
        0, cols, values, "amax"
    )
    chunk_ties = torch.bincount(cols[values == chunk_best[cols]], minlength=n)
    new = torch.maximum(best, chunk_best)
    ties = torch.where(best == new, ties, 0) + torch.where(chunk_best == new, chunk_ties, 0)
    return new, ties


def embedding_scores(
    query_emb: torch.Tensor, gallery_emb: torch.Tensor
) -> Callable[[int, int], torch.Tensor]:
    """``score_rows`` for cosine/dot-product scores between two embedding matrices."""
    gallery_t = gallery_emb.T.contiguous()

    def rows(start: int, stop: int) -> torch.Tensor:
        return query_emb[start:stop] @ gallery_t

    return rows


@dataclass
class BidirectionalResult:
    """Audio->text and text->audio rankings over the same N clips."""

    a2t: RankingResult
    t2a: RankingResult
    n: int
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``fsclap eval --json`` contract: ``{"n": N, "a2t": {...}, "t2a": {...}}`` in percent."""
        return {"n": self.n, "a2t": self.a2t.summary(), "t2a": self.t2a.summary(), **self.extra}


def evaluate_embeddings(
    audio_emb: torch.Tensor,
    text_emb: torch.Tensor,
    captions: Sequence[str],
    chunk_size: int = 256,
) -> BidirectionalResult:
    """Leak-free bi-encoder evaluation: item i's audio and caption; every clip is a query both ways."""
    if len(audio_emb) != len(text_emb) or len(audio_emb) != len(captions):
        raise ValueError("audio, text embeddings and captions must have the same length")
    a2t, t2a = rank_both_ways(audio_emb, text_emb, caption_keys(captions), chunk_size=chunk_size)
    return BidirectionalResult(a2t, t2a, n=len(captions))
