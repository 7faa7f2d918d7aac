"""Logging writes to the current stderr, even after a harness swapped (and closed) the old one."""

import io
import logging
import sys

from fsclap.log import _CurrentStderrHandler, get_logger


def test_records_follow_the_current_stderr(monkeypatch):
    logger = get_logger("test_log")
    handler = _CurrentStderrHandler()
    logger.addHandler(handler)
    # only this handler: an earlier test's setup_logging may have left one on a parent logger
    monkeypatch.setattr(logger, "propagate", False)
    try:
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        logger.warning("one")
        first.close()  # what a finished capture does to its stream
        monkeypatch.setattr(sys, "stderr", second)
        logger.warning("two")
        assert second.getvalue() == "two\n"
        assert isinstance(handler, logging.StreamHandler)
    finally:
        logger.removeHandler(handler)


def test_progress_without_a_terminal_logs_lines_for_long_loops(caplog):
    """No bar in a worker or CI: a long loop reports every PROGRESS_LOG_EVERY_S seconds and when it
    ends (what a Prefect run's log shows); a short loop stays quiet."""
    import logging

    from fsclap.log import PROGRESS_LOG_EVERY_S, _logged_progress

    ticks = iter(range(0, 1000, 10))  # each item takes 10 s

    def clock():
        return float(next(ticks))

    caplog.set_level(logging.INFO, logger="fsclap.progress")
    assert list(_logged_progress(range(10), "acquire", 10, "episode", clock=clock)) == list(
        range(10)
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "fsclap.progress"]
    assert PROGRESS_LOG_EVERY_S == 30.0
    assert lines[0] == "acquire: 3/10 episodes in 30 s (0.10/s)"
    assert len(lines) == 4 and lines[-1] == "acquire: 10/10 episodes in 110 s (0.09/s), done"
    caplog.clear()
    quick = iter([0.0, 1.0, 2.0, 3.0])
    list(_logged_progress(range(2), "caption", 2, "clip", clock=lambda: next(quick)))
    assert not [r for r in caplog.records if r.name == "fsclap.progress"]
