"""Evaluation time at N = 10k / 100k galleries, and index build / search latency / recall@10 of the
approximate (HNSW) index against exact search on random unit vectors.

    python benchmarks/retrieval_scale.py [--eval-sizes 10000 100000] [--index-size 1000000] [--dim 512]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from model.index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, new_vector_index
from model.metrics import evaluate_embeddings


def unit(rng, n, dim):
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_eval(n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(unit(rng, n, dim))
    text = torch.nn.functional.normalize(audio + 0.9 * torch.from_numpy(unit(rng, n, dim)), dim=1)
    captions = [f"caption {i % (n // 3)}" for i in range(n)]
    start = time.perf_counter()
    res = evaluate_embeddings(audio, text, captions, chunk_size=512)
    seconds = time.perf_counter() - start
    print(f"eval  N={n:>7}  dim={dim}  {seconds:7.1f} s (both directions)  a2t={res.a2t.summary()}")


def bench_index(n: int, dim: int, queries: int = 1000) -> None:
    """One vector index per kind, as ClipIndex builds for each modality (it builds two: audio and text)."""
    rng = np.random.default_rng(1)
    vectors = unit(rng, n, dim)
    q = unit(rng, queries, dim)
    results = {}
    for kind in ("exact", "hnsw"):
        index = new_vector_index(dim, kind)
        start = time.perf_counter()
        index.add(vectors)
        build = time.perf_counter() - start
        lat = []
        rows = []
        for i in range(queries):
            t = time.perf_counter()
            _, found = index.search(q[i : i + 1], 10)
            lat.append(time.perf_counter() - t)
            rows.append(found[0].tolist())
        lat_ms = np.array(lat) * 1000
        results[kind] = rows
        print(
            f"index N={n:>7} dim={dim} {kind:5s}  build {build:7.1f} s  "
            f"search p50 {np.percentile(lat_ms, 50):7.2f} ms  p99 {np.percentile(lat_ms, 99):7.2f} ms  (1 query at a time)",
            flush=True,
        )
        del index
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(results["hnsw"], results["exact"])])
    print(f"index N={n:>7} HNSW recall@10 vs exact: {recall:.3f} (M={HNSW_M}, efConstruction={HNSW_EF_CONSTRUCTION}, "
          f"efSearch={HNSW_EF_SEARCH})")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--index-size", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    for n in args.eval_sizes:
        bench_eval(n, args.dim)
    if args.index_size:
        bench_index(args.index_size, args.dim)


if __name__ == "__main__":
    main()
