"""Does the code of one commit resume a data root that another commit built, without redoing work?

    python scripts/resume_compat.py OLD_COMMIT [NEW_COMMIT] [--dramas 2] [--episodes 2] [--seconds 30]

Checks out both commits into temporary git worktrees, generates a few dramas (``fsclap synth
drama`` of OLD), builds a corpus with OLD's code (in-process executor, offline profile), then:

1. resumes a copy of that data root with NEW's code: every stage must report ``ran 0`` for every
   episode (nothing redone) and the run must end with the same stages done;
2. builds the same sources from scratch with NEW's code: the published dataset version (a hash of
   the dataset's content) must equal OLD's when NEW changed no output on purpose.

Prints both builds' dataset versions and the per-stage counts of the resume, and exits 1 when the
resume redid work. NEW defaults to the working tree's HEAD. Uses this checkout's virtual
environment; the commits' own code is put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUILD = """
import json, pathlib, sys
from fsclap.config import load_settings
from pipeline.runner import run_build
summary = run_build(load_settings(overrides={"data_root": sys.argv[1]}), sys.argv[2])
try:
    from fsclap.layout import DataRoot
    version = DataRoot(sys.argv[1]).datasets.latest()
except ImportError:  # a commit from before the layout module
    latest = pathlib.Path(sys.argv[1], "datasets", "LATEST")
    version = latest.read_text().strip() if latest.exists() else None
print(json.dumps({
    "work_done": summary.work_done,
    "stages": {s.name: dict(s.counts) for s in summary.stages},
    "version": version,
}))
"""


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), commit],
        check=True,
        capture_output=True,
    )
    return where


def run_with(code: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run(
        [sys.executable, *args], cwd=code, env=env, check=True, capture_output=True, text=True
    )


def build(code: Path, data_root: Path, sources: Path) -> dict:
    out = run_with(code, "-c", BUILD, str(data_root), str(sources))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default="HEAD")
    parser.add_argument("--dramas", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsclap-resume-") as tmp:
        tmp = Path(tmp)
        old, new = worktree(args.old, tmp / "old"), worktree(args.new, tmp / "new")
        try:
            dramas = tmp / "dramas"
            run_with(
                old,
                *("-m", "fsclap.cli", "synth", "drama", "--out", str(dramas)),
                *("--dramas", str(args.dramas), "--episodes", str(args.episodes)),
                *("--duration", str(args.seconds), "--seed", "3"),
            )
            sources = dramas / "sources.yaml"
            built = build(old, tmp / "old-root", sources)
            subprocess.run(["cp", "-a", str(tmp / "old-root"), str(tmp / "resumed")], check=True)
            resumed = build(new, tmp / "resumed", sources)
            fresh = build(new, tmp / "new-root", sources)
        finally:
            for path in (old, new):
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                    capture_output=True,
                )
    print(f"{args.old} built: {built['work_done']} stage runs, dataset {built['version']}")
    print(
        f"{args.new} resuming it: {resumed['work_done']} stage runs, dataset {resumed['version']}"
    )
    for name, counts in resumed["stages"].items():
        print(f"  {name:<12} {counts}")
    print(f"{args.new} from scratch: dataset {fresh['version']}")
    same = "the same" if fresh["version"] == built["version"] else "a DIFFERENT"
    print(f"-> resume redid {resumed['work_done']} stage runs; {same} dataset version from scratch")
    return 1 if resumed["work_done"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
