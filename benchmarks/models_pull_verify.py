"""How long the model tools take: offline fail-fast of ``fsclap models pull``, checksum speed,
and ``verify`` (load + forward on silence) per model on tiny random-weight models.

    .venv/bin/python benchmarks/models_pull_verify.py [--hash-mb 512] [--timeout 5]

Prints: seconds until ``pull`` gives up with the manual-copy list when the hubs refuse
connections and when they accept a connection but never answer (a local socket that is never
read: bounded by ``model_hubs.connect_timeout_s``); SHA-256 MB/s on this disk (what ``verify`` spends on the
~4.9 GB paper set); seconds per model for ``verify`` of the tiny set (the real models' load
times are dominated by reading their weights and are not measured here: no hub on this machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def fail_fast_seconds(endpoint: str, timeout: float) -> float:
    from fsclap.config import load_settings
    from fsclap.weights import pull_models

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "MODELSCOPE_CACHE": f"{tmp}/ms",
                "HF_HUB_CACHE": f"{tmp}/hf",
                "TORCH_HOME": f"{tmp}/torch",
                "MODELSCOPE_ENDPOINT": endpoint,
                "HF_HUB_OFFLINE": "1",
            }
        )
        settings = load_settings(
            overrides={
                "models_dir": f"{tmp}/models",
                "model_hubs": {"demucs_url": f"{endpoint}/demucs/", "connect_timeout_s": timeout},
            }
        )
        start = time.perf_counter()
        report = pull_models(settings)
        elapsed = time.perf_counter() - start
        assert len(report.manual) == 7, report.render()
    return elapsed


def sha256_mb_per_s(megabytes: int) -> float:
    from fsclap.io import sha256_file

    with tempfile.NamedTemporaryFile(dir=".", delete=True) as handle:
        block = os.urandom(1 << 20)
        for _ in range(megabytes):
            handle.write(block)
        handle.flush()
        start = time.perf_counter()
        sha256_file(handle.name)
        return megabytes / (time.perf_counter() - start)


def verify_seconds() -> dict[str, float]:
    from fsclap.config import load_settings
    from fsclap.testing import tiny_models as tm
    from fsclap.weights import verify_models

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tm.write_funasr_model_dirs(root)
        tm.write_sensevoice_small_dir(root / "sensevoice")
        tm.write_htdemucs_repo(root / "demucs")
        tm.write_tiny_clap_original(root / "laion_clap")
        report = verify_models(
            load_settings(overrides={"models_dir": tmp}), profile="paper", device="cpu"
        )
        assert report.ok, report.render()
        return {c.id: c.seconds for c in report.checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hash-mb", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=5.0, help="model_hubs.connect_timeout_s")
    args = parser.parse_args()
    print(
        f"pull, hubs refuse connections: manual-copy list after {fail_fast_seconds('http://127.0.0.1:9', args.timeout):.2f} s"
    )
    import socket

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        print(
            f"pull, hubs never answer: manual-copy list after {fail_fast_seconds(url, args.timeout):.2f} s "
            f"(connect timeout {args.timeout:.0f} s)"
        )
    speed = sha256_mb_per_s(args.hash_mb)
    print(f"sha256: {speed:.0f} MB/s -> ~{4900 / speed:.0f} s to check the ~4.9 GB paper set")
    for model_id, seconds in verify_seconds().items():
        print(
            f"verify {model_id:<11} {seconds:5.2f} s (tiny model: load + forward on 1 s of silence)"
        )


if __name__ == "__main__":
    main()
