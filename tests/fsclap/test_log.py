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
