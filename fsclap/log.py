"""Logging and progress bars: readable in a terminal, quiet and line-oriented in CI."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_PROGRESS: bool | None = None


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not the stream of setup time
    (a test harness or a notebook swaps and closes streams; a stale one raised "Logging error" noise)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(level: str | int = "INFO", progress: bool | None = None) -> None:
    """Configure the ``fsclap`` loggers once; rich output for a terminal, plain lines otherwise."""
    global _PROGRESS
    _PROGRESS = progress
    root = logging.getLogger("fsclap")
    root.setLevel(level if isinstance(level, int) else level.upper())
    if root.handlers:
        return
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _CurrentStderrHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """Loggers live under ``fsclap.`` so one setup call covers pipeline/, model/ and flows/."""
    return logging.getLogger(name if name.startswith("fsclap") else f"fsclap.{name}")


def progress_enabled() -> bool:
    if _PROGRESS is not None:
        return _PROGRESS
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        return False
    return sys.stderr.isatty()


#: Without a bar (a worker, CI, a pipe), a long loop logs a progress line this often, and one line
#: when it ends if it ran at least this long: a Prefect run's log (the UI, ``--watch``) shows it.
PROGRESS_LOG_EVERY_S = 30.0


def progress(
    iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """A tqdm bar for long loops in a terminal; elsewhere (CI, workers, pipes) progress lines on the
    ``fsclap.progress`` logger every :data:`PROGRESS_LOG_EVERY_S` seconds."""
    if progress_enabled():
        return iter(tqdm(iterable, desc=desc, total=total, unit=unit, leave=False))
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return _logged_progress(iterable, desc, total, unit)


def _logged_progress(
    iterable: Iterable[T], desc: str, total: int | None, unit: str, clock=time.monotonic
) -> Iterator[T]:
    logger = logging.getLogger("fsclap.progress")
    start = last = clock()
    done = 0

    def line(now: float) -> str:
        of = f"/{total}" if total else ""
        rate = done / (now - start) if now > start else float("nan")
        units = unit + ("es" if unit.endswith(("ch", "s")) else "s")
        return f"{desc or 'progress'}: {done}{of} {units} in {now - start:.0f} s ({rate:.2f}/s)"

    for item in iterable:
        yield item
        done += 1
        now = clock()
        if now - last >= PROGRESS_LOG_EVERY_S:
            logger.info(line(now))
            last = now
    now = clock()
    if now - start >= PROGRESS_LOG_EVERY_S and last != now:
        logger.info(line(now) + ", done")


@contextmanager
def timed(label: str, logger: logging.Logger | None = None, out=None):
    """Time a block and report ``label: 1.23 s``; the elapsed seconds are in the yielded dict."""
    record = {"label": label, "seconds": 0.0}
    start = time.perf_counter()
    try:
        yield record
    finally:
        record["seconds"] = time.perf_counter() - start
        message = f"{label}: {record['seconds']:.2f} s"
        if out is not None:
            print(message, file=out, flush=True)
        elif logger is not None:
            logger.info(message)
