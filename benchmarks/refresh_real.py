"""A refresh with nothing new over real short episodes (tracker issue "Paper scale").

Where :mod:`benchmarks.scale` runs stand-in stages, this runs the real ones on real media: it
generates short episodes once with the project's own generator (``fsclap synth drama``: one pool
of ``max(sizes)`` episodes, ``--per-drama`` per drama, cached under ``--work``; a smaller size is
the pool's first dramas, through a sources file of its own), builds each size once with
``fsclap corpus build --profile offline`` (the first build of 200 episodes takes minutes; a data
root already built is only refreshed), then times refreshes with nothing new:

* ``cli_s``     ``fsclap corpus build`` in a fresh process, as a user runs it (process start,
                imports, the Prefect flow and its ephemeral server, pre-flight, the build);
* ``runner_s``  :func:`pipeline.runner.run_build` in this process (the engine and the real stages'
                resume keys and output checks, without process start or Prefect).

Per measure it prints the best of ``--repeats`` runs and, from two or more sizes, the fit
``time = fixed + per-episode * N``.

    .venv/bin/python benchmarks/refresh_real.py                       # 200 and 500 episodes
    .venv/bin/python benchmarks/refresh_real.py --sizes 200 1000 --work /tmp/fsclap-refresh-real
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FSCLAP = [sys.executable, "-m", "fsclap.cli"]


def episode_pool(pool: Path, episodes: int, per_drama: int, seconds: float) -> Path:
    """The generated episodes (resumed: only missing ones are made). Returns the pool folder."""
    from pipeline.synth import generate_dramas

    dramas = -(-episodes // per_drama)
    generate_dramas(pool, dramas=dramas, episodes=per_drama, seed=1, duration_s=seconds, workers=2)
    return pool


def sources_for(pool: Path, size: int, per_drama: int) -> Path:
    """A sources file (beside the pool's own, so its relative paths hold) of the first ``size``
    episodes: the pool's first dramas."""
    doc = yaml.safe_load((pool / "sources.yaml").read_text(encoding="utf-8"))
    keep, left = [], size
    for drama in doc["dramas"]:
        if left <= 0:
            break
        keep.append({**drama, "urls": drama["urls"][:left]})
        left -= len(keep[-1]["urls"])
    if left > 0:
        raise SystemExit(f"the pool holds fewer than {size} episodes")
    doc.update(dramas=keep, min_episodes=min(per_drama, size))
    path = pool / f"sources-{size}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def cli_build(sources: Path, root: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            *FSCLAP,
            "corpus",
            "build",
            "--sources",
            str(sources),
            "--data-root",
            str(root),
            "--profile",
            "offline",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def runner_refresh(sources: Path, root: Path) -> float:
    from fsclap.config import load_settings
    from pipeline.runner import run_build

    settings = load_settings(overrides={"data_root": str(root), "profile": "offline"})
    start = time.perf_counter()
    summary = run_build(settings, sources)
    seconds = time.perf_counter() - start
    if summary.work_done:
        raise SystemExit(f"{root}: the refresh did work ({summary.work_done} episode-stages)")
    return seconds


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``t = a + b*N``: (a seconds, b seconds per episode)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--per-drama", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="Episode length (>= 5).")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "fsclap-refresh-real"
    )
    parser.add_argument(
        "--pool", type=Path, help="Generated episodes (default: WORK/episodes-<seconds>s)."
    )
    parser.add_argument("--skip-cli", action="store_true", help="Time only the in-process runner.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    work = args.work.absolute()
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home"), "CI": "1"}
    env.pop("PREFECT_API_URL", None)
    os.environ.update(PREFECT_HOME=env["PREFECT_HOME"])
    pool = (args.pool or work / f"episodes-{args.seconds:g}s").absolute()
    episode_pool(pool, max(args.sizes), args.per_drama, args.seconds)
    rows = []
    for size in sorted(args.sizes):
        sources = sources_for(pool, size, args.per_drama)
        root = work / f"root-{size}"
        if not (root / "manifests" / "clips.parquet").exists():
            print(f"first build of {size} episodes ...", flush=True)
            print(f"  {cli_build(sources, root, env):.0f} s", flush=True)
        row = {"episodes": size}
        if not args.skip_cli:
            row["cli_s"] = min(cli_build(sources, root, env) for _ in range(args.repeats))
        row["runner_s"] = min(runner_refresh(sources, root) for _ in range(args.repeats))
        rows.append(row)
        print(json.dumps(row), flush=True)
    measures = [m for m in ("cli_s", "runner_s") if m in rows[0]]
    print(f"\n{'episodes':>8}  " + "  ".join(f"{m:>9}" for m in measures))
    for row in rows:
        print(f"{row['episodes']:>8}  " + "  ".join(f"{row[m]:>9.2f}" for m in measures))
    fits = {}
    if len(rows) >= 2:
        for m in measures:
            a, b = fit([(r["episodes"], r[m]) for r in rows])
            fits[m] = {"fixed_s": a, "per_episode_ms": b * 1000, "at_1000_s": a + 1000 * b}
            print(
                f"{m}: {a:.1f} s fixed + {b * 1000:.2f} ms per episode ({a + 1000 * b:.1f} s at 1,000)"
            )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "fits": fits}, indent=2))


if __name__ == "__main__":
    main()
