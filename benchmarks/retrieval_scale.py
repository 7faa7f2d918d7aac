"""Evaluation time at N = 10k / 100k galleries, and index build / search latency / recall@10 of the
approximate (HNSW) index against exact search, on random unit vectors (no structure: the worst case)
and on vectors of low intrinsic dimension (closer to a trained model's embeddings), for several efSearch.

    python benchmarks/retrieval_scale.py [--eval-sizes 10000 100000] [--index-size 1000000] [--dim 512]
        [--data random lowrank] [--ef-search 64 128 512 2048]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from model.index import (
    CALIBRATION_QUERIES,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    MAX_EF_SEARCH,
    TARGET_RECALL,
    calibrate_ef_search,
    new_vector_index,
)
from model.metrics import evaluate_embeddings


def unit(rng, n, dim):
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_eval(n: int, dim: int, chunk_size: int = 512) -> None:
    """Full-gallery evaluation (both directions) against one chunked N x N score product in the same
    process: both directions share that product, so its time is the floor (target: within 1.5x)."""
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(unit(rng, n, dim))
    text = torch.nn.functional.normalize(audio + 0.9 * torch.from_numpy(unit(rng, n, dim)), dim=1)
    captions = [f"caption {i % (n // 3)}" for i in range(n)]
    evaluate_embeddings(audio[:1000], text[:1000], captions[:1000])  # compile / load the kernels
    start = time.perf_counter()
    text_t = text.T.contiguous()
    for first in range(0, n, chunk_size):
        audio[first : first + chunk_size] @ text_t
    product = time.perf_counter() - start
    start = time.perf_counter()
    res = evaluate_embeddings(audio, text, captions, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    print(
        f"eval  N={n:>7}  dim={dim}  {seconds:7.1f} s (both directions)  one score product "
        f"{product:7.1f} s  ratio {seconds / product:4.2f} (target <= 1.5)  a2t={res.a2t.summary()}",
        flush=True,
    )


def clustered_unit(rng, n, dim, latent=32, noise=0.05):
    """Vectors with low intrinsic dimension, like a trained model's embeddings: a random 32-d subspace
    of the 512-d space plus a little isotropic noise."""
    basis, _ = np.linalg.qr(rng.standard_normal((dim, latent)).astype(np.float32))
    x = rng.standard_normal((n, latent), dtype=np.float32) @ basis.T
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x += noise / np.sqrt(dim) * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _timed_search(index, q, k=10):
    lat, rows = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        _, found = index.search(q[i : i + 1], k)
        lat.append(time.perf_counter() - t)
        rows.append(found[0].tolist())
    lat_ms = np.array(lat) * 1000
    return rows, np.percentile(lat_ms, 50), np.percentile(lat_ms, 99)


def bench_index(n: int, dim: int, data: str, ef_values: list[int], queries: int = 1000) -> None:
    """One vector index per kind, as ClipIndex builds for each modality (it builds two: audio and text).

    ``data``: ``random`` (i.i.d. unit vectors: no structure, the worst case for any graph index) or
    ``lowrank`` (a 32-d subspace plus noise; queries from the same distribution)."""
    rng = np.random.default_rng(1)
    make = unit if data == "random" else clustered_unit
    both = make(rng, n + queries, dim)
    vectors, q = both[:n], both[n:]
    del both
    exact = new_vector_index(dim, "exact")
    exact.add(vectors)
    truth, p50, p99 = _timed_search(exact, q)
    print(
        f"index N={n:>7} dim={dim} {data:8s} exact  search p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  (1 query at a time)",
        flush=True,
    )
    del exact
    index = new_vector_index(dim, "hnsw")
    start = time.perf_counter()
    index.add(vectors)
    build = time.perf_counter() - start
    print(
        f"index N={n:>7} dim={dim} {data:8s} hnsw   build {build:7.1f} s (M={HNSW_M}, efConstruction={HNSW_EF_CONSTRUCTION})",
        flush=True,
    )
    for ef in ef_values:
        index.hnsw.efSearch = ef
        rows, p50, p99 = _timed_search(index, q)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(rows, truth)])
        default = " (start)" if ef == HNSW_EF_SEARCH else ""
        print(
            f"index N={n:>7} dim={dim} {data:8s} hnsw   efSearch {ef:5d}{default:10s} search p50 {p50:7.2f} ms  "
            f"p99 {p99:7.2f} ms  recall@10 vs exact {recall:.3f}",
            flush=True,
        )
    start = time.perf_counter()
    ef, recall = calibrate_ef_search(
        index, q[:CALIBRATION_QUERIES], np.asarray(truth[:CALIBRATION_QUERIES])
    )
    print(
        f"index N={n:>7} dim={dim} {data:8s} hnsw   calibrated efSearch {ef} (recall@10 {recall:.3f}, target "
        f"{TARGET_RECALL}, cap {MAX_EF_SEARCH}) in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    print(
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", flush=True
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--index-size", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument(
        "--data", nargs="*", default=["random", "lowrank"], choices=["random", "lowrank"]
    )
    ap.add_argument("--ef-search", type=int, nargs="*", default=[64, HNSW_EF_SEARCH, 512, 2048])
    args = ap.parse_args()
    for n in args.eval_sizes:
        bench_eval(n, args.dim)
    for data in args.data if args.index_size else []:
        bench_index(args.index_size, args.dim, data, args.ef_search)


if __name__ == "__main__":
    main()
