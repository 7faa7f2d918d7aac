"""``fsclap demo`` / ``make demo``: every stage that exists, end to end, on the offline profile.

The demo grows as stages land; each step prints what it did and how long it took.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from fsclap.config import Settings
from fsclap.errors import FsclapError


def _say(msg: str = "") -> None:
    print(msg, flush=True)


class DemoRun:
    """Runs named steps, timing each and collecting a summary table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def step(self, name: str, fn: Callable[[], str]) -> None:
        _say(f"\n== {name}")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, result))
        _say(f"   {result}")
        _say(f"   ({seconds:.1f} s)")

    def summary(self) -> None:
        _say("\n== summary")
        width = max(len(n) for n, _, _ in self.rows)
        for name, seconds, result in self.rows:
            _say(f"   {name:<{width}}  {seconds:7.1f} s  {result.splitlines()[0] if result else ''}")
        _say(f"   {'total':<{width}}  {sum(s for _, s, _ in self.rows):7.1f} s")


def check_system_tools() -> str:
    missing = [tool for tool in ("ffmpeg", "ffprobe", "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise FsclapError(f"missing system tools: {', '.join(missing)} (run 'make setup' as root or apt-get install them)")
    return "ffmpeg, ffprobe, espeak-ng, sox found"


def check_offline_models(settings: Settings) -> str:
    """Load the offline profile's shipped models and run each once on a short signal."""
    from fsclap.offline_models import smoke_test_offline_models

    report = smoke_test_offline_models(device=settings.resolved_device())
    return "; ".join(f"{name}: {detail}" for name, detail in report.items())


def run_demo(settings: Settings, out: Path, seed: int = 0) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _say(f"fsclap demo: profile={settings.profile} device={settings.resolved_device()} out={out} seed={seed}")
    run = DemoRun()
    run.step("system tools", check_system_tools)
    run.step("offline-profile models load and run", lambda: check_offline_models(settings))
    run.summary()
    _say("\nStages not built yet are listed in the README's status table.")
    sys.stdout.flush()
