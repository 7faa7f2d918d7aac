"""Full-gallery retrieval metrics with the protocol of DESIGN.md.

- Every query is ranked against the whole gallery, in chunks of queries so 100k items fit in memory.
- Positives: gallery items whose key (the normalised caption) equals the query's key.
- Ties are pessimistic and deterministic: among equal scores, negatives rank before positives,
  then lower gallery index first. A positive tied with a negative therefore counts against the model.
- R@k: share of queries with at least one positive in the top k.
- AP@10 = (1/min(|P|,10)) * sum_{k<=10} P@k * rel_k; mAP@10 is its mean over queries.
- Percentages are reported with one decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

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

    def summary(self, ks: Sequence[int] = DEFAULT_KS, mask: np.ndarray | None = None) -> dict[str, float]:
        """Metrics in percent with one decimal: ``{"R@1": .., "R@5": .., "R@10": .., "mAP@10": ..}``."""
        out = {f"R@{k}": round(100.0 * self.recall_at(k, mask), 1) for k in ks}
        out[f"mAP@{self.map_k}"] = round(100.0 * self.mean_ap(mask), 1)
        return out


def caption_keys(captions: Sequence[str]) -> np.ndarray:
    """Integer ids such that equal normalised captions share an id."""
    from fsclap.manifest import normalise_caption

    ids: dict[str, int] = {}
    return np.array([ids.setdefault(normalise_caption(c), len(ids)) for c in captions], dtype=np.int64)


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
    ``start:stop`` against all ``N`` gallery items (higher = more similar). Scores are compared
    in float64 after they are computed, so the metric itself adds no rounding.
    """
    query_keys = np.asarray(query_keys)
    gallery_keys_t = torch.as_tensor(np.asarray(gallery_keys))
    n_queries, n_gallery = len(query_keys), len(gallery_keys_t)
    depth = max(map_k, top_k)
    first_rank = np.empty(n_queries, dtype=np.int64)
    ap = np.empty(n_queries, dtype=np.float64)
    top = np.empty((n_queries, min(top_k, n_gallery)), dtype=np.int64)
    n_pos = np.empty(n_queries, dtype=np.int64)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        scores = score_rows(start, stop).detach().to("cpu", torch.float64)
        if scores.shape != (stop - start, n_gallery):
            raise ValueError(f"score_rows returned {tuple(scores.shape)}, expected {(stop - start, n_gallery)}")
        positive = gallery_keys_t[None, :] == torch.as_tensor(query_keys[start:stop])[:, None]
        order = _ordered_top(scores, positive, depth)
        first_rank[start:stop] = _first_positive_rank(scores, positive)
        rel = torch.gather(positive, 1, order[:, :map_k]).to(torch.float64)
        npos = positive.sum(1)
        precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
        denom = torch.clamp(npos, max=map_k).clamp(min=1).to(torch.float64)
        ap[start:stop] = ((precision * rel).sum(1) / denom).numpy()
        top[start:stop] = order[:, : top.shape[1]].numpy()
        n_pos[start:stop] = npos.numpy()
    if (n_pos == 0).any():
        missing = int((n_pos == 0).sum())
        raise ValueError(f"{missing} query(ies) have no positive in the gallery")
    return RankingResult(first_rank, ap, top, n_pos, map_k=map_k, n_gallery=n_gallery)


def _first_positive_rank(scores: torch.Tensor, positive: torch.Tensor) -> np.ndarray:
    """1-based rank of the best positive: items scored higher, plus negatives tied with it, come first."""
    best_pos = torch.where(positive, scores, torch.full_like(scores, -torch.inf)).max(1).values[:, None]
    higher = (scores > best_pos).sum(1)
    tied_negatives = ((scores == best_pos) & ~positive).sum(1)
    return (1 + higher + tied_negatives).numpy()


def _ordered_top(scores: torch.Tensor, positive: torch.Tensor, depth: int) -> torch.Tensor:
    """The first ``depth`` gallery indices per row, ordered by (-score, positives after negatives, index)."""
    n = scores.shape[1]
    depth = min(depth, n)
    kth = torch.topk(scores, depth, dim=1).values[:, -1:]
    rows = []
    for i in range(scores.shape[0]):
        cand = torch.nonzero(scores[i] >= kth[i], as_tuple=True)[0]  # every item that may enter the top
        s = scores[i, cand].numpy()
        p = positive[i, cand].numpy()
        idx = cand.numpy()
        keep = np.lexsort((idx, p, -s))[:depth]  # last key is primary
        rows.append(torch.as_tensor(idx[keep]))
    return torch.stack(rows)


def embedding_scores(query_emb: torch.Tensor, gallery_emb: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
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
