"""Request latency (p50/p99) and throughput of ``fsclap serve`` under concurrent load on loopback.

    python benchmarks/serve_latency.py [--index DIR] [--concurrency 1 8 32] [--requests 200]
                                       [--synthetic 100000 --kind exact|hnsw]

Without ``--index`` it builds a small real index first (generated speech, a 1-epoch tiny checkpoint).
``--synthetic N`` serves a copy of that index grown to N clips with random unit vectors (same model, real
audio files), to see how search and filters scale; the figures say so. The server runs in its own
process (``fsclap serve --port 0``); the load comes from asyncio httpx clients in this one, so on a small
machine both share the CPUs. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

QUERIES = [
    "a sad woman speaking slowly",
    "an angry man shouting",
    "a calm low-pitched voice",
    "a cheerful young woman speaking fast",
    "a tired old man whispering",
    "a surprised voice, high pitch",
    "someone speaking loudly and quickly",
    "a gentle female voice with low energy",
]
TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1}",
    "freeze_text=true",
    "workers=0",
    "epochs=1",
    "batch_size=16",
    "grad_accum=1",
    "lr_scratch=2e-3",
]


def build_small_index(work: Path) -> Path:
    from fsclap.cli import main as cli
    from fsclap.manifest import ClipManifest
    from pipeline.synth import generate_style_corpus

    corpus = generate_style_corpus(work / "style", n=64, seed=3, workers=2)
    frame = ClipManifest.read(corpus.manifest_path, validate_levels=False).frame
    frame["drama_id"] = [f"drama-{i % 4}" for i in range(len(frame))]
    frame["language"] = "en"
    manifest = work / "clips.parquet"
    frame.to_parquet(manifest)
    frame[frame["split"] == "val"].to_parquet(work / "val.parquet")
    run = work / "run"
    if (
        cli(
            [
                "train",
                "--train",
                str(manifest),
                "--val",
                str(work / "val.parquet"),
                "--out",
                str(run),
                *[f"--set={s}" for s in TINY],
            ]
        )
        != 0
    ):
        sys.exit("training the benchmark checkpoint failed")
    if (
        cli(
            [
                "index",
                "--checkpoint",
                str(run),
                "--manifest",
                str(manifest),
                "--out",
                str(work / "index"),
            ]
        )
        != 0
    ):
        sys.exit("indexing failed")
    return work / "index"


def grow_index(index_dir: Path, out: Path, n: int, kind: str) -> Path:
    """A copy of ``index_dir`` with ``n`` clips: its real rows repeated (new ids), random unit vectors."""
    from model.index import ClipIndex

    base = ClipIndex.open(index_dir)
    reps = -(-n // len(base))
    clips = pd.concat([base.clips] * reps, ignore_index=True).iloc[:n].copy()
    clips["clip_id"] = [f"{c}~{i}" for i, c in enumerate(clips["clip_id"])]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, base.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ClipIndex.build(
        out, clips, vectors, vectors, base.meta["model_fingerprint"], base.meta["model"], kind=kind
    )
    return out


def start_server(index_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsclap.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--index",
                str(index_dir),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    line = proc.stdout.readline().decode()
    if " on http" not in line:
        proc.kill()
        sys.exit(f"server did not start: {line}{log.read_text()}")
    url = line.split(" on ", 1)[1].strip().rstrip("/")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("server did not answer /health")


async def load(
    url: str, requests: list[tuple[str, dict, dict]], concurrency: int
) -> tuple[np.ndarray, int, float]:
    """Send ``requests`` (path, params, headers) with ``concurrency`` workers; latencies in ms."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker():
            nonlocal errors
            while not queue.empty():
                path, params, headers = queue.get_nowait()
                start = time.perf_counter()
                response = await client.get(path, params=params, headers=headers)
                await response.aread()
                latencies.append((time.perf_counter() - start) * 1000)
                errors += response.status_code >= 400

        wall = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - wall
    return np.array(latencies), errors, wall


def scenarios(url: str, n: int) -> dict[str, list[tuple[str, dict, dict]]]:
    clips = httpx.get(url + "/search", params={"q": "a voice", "k": 100}).json()["results"]
    ids = [c["clip_id"] for c in clips]
    facets = httpx.get(url + "/facets").json()["filters"]
    gender = facets["gender"][0]["value"]
    emotion = facets["emotion"][0]["value"]
    from urllib.parse import quote

    audio = [f"/clips/{quote(i, safe='')}/audio" for i in ids]
    return {
        "GET /search (k=10)": [
            ("/search", {"q": QUERIES[i % len(QUERIES)], "k": 10}, {}) for i in range(n)
        ],
        "GET /search + 2 filters": [
            (
                "/search",
                {"q": QUERIES[i % len(QUERIES)], "k": 10, "gender": gender, "emotion": emotion},
                {},
            )
            for i in range(n)
        ],
        "GET /clips/{id}/similar": [
            (f"/clips/{quote(ids[i % len(ids)], safe='')}/similar", {"k": 10}, {}) for i in range(n)
        ],
        "GET /clips/{id}/audio (whole)": [(audio[i % len(audio)], {}, {}) for i in range(n)],
        "GET /clips/{id}/audio (Range 64 KiB)": [
            (audio[i % len(audio)], {}, {"Range": "bytes=0-65535"}) for i in range(n)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index", type=Path, help="An index from 'fsclap index' (default: build a small one)."
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--requests", type=int, default=200, help="Requests per scenario and concurrency level."
    )
    parser.add_argument(
        "--synthetic", type=int, default=0, help="Grow the index to N clips (random vectors)."
    )
    parser.add_argument(
        "--kind", default="exact", choices=["exact", "hnsw"], help="Index kind for --synthetic."
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fsclap-serve-bench-") as tmp:
        work = Path(tmp)
        index_dir = args.index or build_small_index(work)
        if args.synthetic:
            index_dir = grow_index(index_dir, work / "grown", args.synthetic, args.kind)
        proc, url = start_server(index_dir, work / "serve.log")
        try:
            version = httpx.get(url + "/version").json()["index"]
            label = " (synthetic vectors)" if args.synthetic else ""
            print(
                f"server {url}: {version['count']} clips, {version['kind']} index, {version['dim']}-d{label}; "
                f"{os.cpu_count()} CPUs shared by server and client"
            )
            print(
                f"{'scenario':38} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>6}"
            )
            for name, requests in scenarios(url, args.requests).items():
                asyncio.run(load(url, requests[: min(20, len(requests))], 4))  # warm-up
                for concurrency in args.concurrency:
                    lat, errors, wall = asyncio.run(load(url, requests, concurrency))
                    print(
                        f"{name:38} {concurrency:>4} {len(lat):>5} {np.percentile(lat, 50):>8.1f} "
                        f"{np.percentile(lat, 99):>8.1f} {len(lat) / wall:>8.1f} {errors:>6}",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
