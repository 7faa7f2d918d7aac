"""What running the corpus builder as a Prefect flow costs over the plain runner.

Measures, on a generated drama (1 drama x N episodes):
  * importing the flows module;
  * Prefect's ephemeral API server starting (what `fsclap corpus build` waits for without a
    PREFECT_API_URL): on a fresh PREFECT_HOME (database migrations) and on an existing one;
  * a full build with `pipeline.runner.run_build` vs the `build-corpus` flow (one Prefect task per
    stage per episode, task results persisted), and a rerun with nothing to do, for both.

    .venv/bin/python benchmarks/flow_overhead.py [--episodes 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_PROBE = """
import time
start = time.perf_counter()
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    client.hello()
print(time.perf_counter() - start)
"""


def timed_subprocess(code: str, env: dict) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fsclap-flow-bench-"))
    atexit.register(
        shutil.rmtree, work, True
    )  # registered first: runs after Prefect stops its server
    home = work / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "CRITICAL",
        "CI": "1",
    }
    env.pop("PREFECT_API_URL", None)
    rows: list[tuple[str, float]] = []

    rows.append(
        (
            "import flows.build_corpus (fresh interpreter)",
            timed_subprocess(
                "import time; s = time.perf_counter(); import flows.build_corpus; print(time.perf_counter() - s)",
                env,
            ),
        )
    )
    rows.append(
        ("ephemeral API server ready, fresh PREFECT_HOME", timed_subprocess(SERVER_PROBE, env))
    )
    rows.append(
        ("ephemeral API server ready, existing database", timed_subprocess(SERVER_PROBE, env))
    )

    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})
    os.environ.pop("PREFECT_API_URL", None)
    from flows.runtime import prepare_local_prefect

    prepare_local_prefect()
    from prefect.client.orchestration import get_client

    from flows.build_corpus import build_corpus
    from fsclap.config import load_settings
    from pipeline.runner import run_build
    from pipeline.synth import generate_dramas

    with get_client(
        sync_client=True
    ) as client:  # start this process's ephemeral server before timing builds
        client.hello()
    drama = generate_dramas(
        work / "drama", dramas=1, episodes=args.episodes, seed=3, duration_s=args.seconds, workers=2
    )
    for name, run in (
        (
            "plain runner",
            lambda root: run_build(
                load_settings(overrides={"data_root": str(root)}), drama.sources_path
            ),
        ),
        (
            "build-corpus flow",
            lambda root: build_corpus({"sources": str(drama.sources_path), "data_root": str(root)}),
        ),
    ):
        root = work / name.replace(" ", "-")
        for label in ("build", "rerun, nothing to do"):
            start = time.perf_counter()
            run(root)
            rows.append(
                (
                    f"{name}: {label} ({args.episodes} x {args.seconds:.0f} s episodes)",
                    time.perf_counter() - start,
                )
            )

    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print(f"(machine load during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
