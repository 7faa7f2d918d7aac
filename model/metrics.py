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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fsclap.manifest import normalise_caption

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
    groups = _KeyGroups(gallery_keys)
    depth = max(map_k, top_k)
    first_rank = np.empty(n_queries, dtype=np.int64)
    ap = np.empty(n_queries, dtype=np.float64)
    top = np.empty((n_queries, min(top_k, n_gallery)), dtype=np.int64)
    n_pos = np.empty(n_queries, dtype=np.int64)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        scores = score_rows(start, stop).detach().to("cpu")
        if scores.dtype not in (torch.float32, torch.float64):
            scores = scores.float()
        if scores.shape != (stop - start, n_gallery):
            raise ValueError(
                f"score_rows returned {tuple(scores.shape)}, expected {(stop - start, n_gallery)}"
            )
        keys = query_keys[start:stop]
        rows, cols = groups.positives(keys)
        npos = np.bincount(rows, minlength=len(keys))
        if (npos == 0).any():
            raise ValueError(f"{int((npos == 0).sum())} query(ies) have no positive in the gallery")
        first_rank[start:stop] = _first_positive_rank(
            scores, torch.as_tensor(rows), torch.as_tensor(cols)
        )
        order = _ordered_top(scores, keys, gallery_keys, depth)
        rel = torch.as_tensor(gallery_keys[order[:, :map_k]] == keys[:, None], dtype=torch.float64)
        precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
        denom = torch.as_tensor(np.clip(npos, 1, map_k), dtype=torch.float64)
        ap[start:stop] = ((precision * rel).sum(1) / denom).numpy()
        top[start:stop] = order[:, : top.shape[1]]
        n_pos[start:stop] = npos
    return RankingResult(first_rank, ap, top, n_pos, map_k=map_k, n_gallery=n_gallery)


class _KeyGroups:
    """Gallery indices grouped by key, to list each query's positives without a dense (Q, N) mask."""

    def __init__(self, gallery_keys: np.ndarray):
        self.order = np.argsort(gallery_keys, kind="stable")
        self.keys, self.starts, self.counts = np.unique(
            gallery_keys[self.order], return_index=True, return_counts=True
        )

    def positives(self, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, gallery index) of every positive pair of these queries."""
        slot = np.clip(np.searchsorted(self.keys, query_keys), 0, max(len(self.keys) - 1, 0))
        found = self.keys[slot] == query_keys if len(self.keys) else np.zeros(len(query_keys), bool)
        count = np.where(found, self.counts[slot], 0)
        rows = np.repeat(np.arange(len(query_keys)), count)
        within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return rows, self.order[np.repeat(self.starts[slot], count) + within]


def _first_positive_rank(
    scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> np.ndarray:
    """1-based rank of the best positive: items scored higher, plus negatives tied with it, come first.

    ``rows``/``cols``: the positive (query, gallery) pairs. Everything scored >= the best positive
    precedes it except the positives tied with it (itself included)."""
    pos_scores = scores[rows, cols]
    best = torch.full((scores.shape[0],), -torch.inf, dtype=scores.dtype).scatter_reduce(
        0, rows, pos_scores, "amax"
    )
    tied_positives = torch.bincount(rows[pos_scores == best[rows]], minlength=scores.shape[0])
    at_least = torch.count_nonzero(scores >= best[:, None], dim=1)
    return (1 + at_least - tied_positives).numpy()


def _ordered_top(
    scores: torch.Tensor, query_keys: np.ndarray, gallery_keys: np.ndarray, depth: int
) -> np.ndarray:
    """The first ``depth`` gallery indices per row, ordered by (-score, positives after negatives, index)."""
    n = scores.shape[1]
    depth = min(depth, n)
    kth = torch.topk(scores, depth, dim=1).values[:, -1:]
    rows = np.empty((scores.shape[0], depth), dtype=np.int64)
    for i in range(scores.shape[0]):
        cand = torch.nonzero(scores[i] >= kth[i], as_tuple=True)[
            0
        ].numpy()  # every item that may enter the top
        s = scores[i, cand].numpy()
        p = gallery_keys[cand] == query_keys[i]
        rows[i] = cand[np.lexsort((cand, p, -s))[:depth]]  # last key is primary
    return rows


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
    keys = caption_keys(captions)
    a2t = rank_gallery(embedding_scores(audio_emb, text_emb), keys, keys, chunk_size=chunk_size)
    t2a = rank_gallery(embedding_scores(text_emb, audio_emb), keys, keys, chunk_size=chunk_size)
    return BidirectionalResult(a2t, t2a, n=len(captions))
