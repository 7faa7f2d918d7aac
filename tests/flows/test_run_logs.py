"""A failed flow run's log holds its traceback once (flows/run_logs.py)."""

from __future__ import annotations

import logging

from flows.run_logs import FLOW_RUN_LOGGER, TracebackOnce


def fail_as_the_engine_logs_it(logger: logging.Logger) -> None:
    """Prefect's engine: the exception with its traceback, then again as it leaves the run."""
    try:
        raise ValueError("sources file not found")
    except ValueError:
        logger.exception("Encountered exception during execution")
        logger.error("Engine execution exited with unexpected exception", exc_info=True)


def test_the_second_traceback_of_one_exception_is_dropped():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tests.run_logs")
    logger.propagate = False
    logger.addHandler(handler)
    logger.addFilter(TracebackOnce())

    fail_as_the_engine_logs_it(logger)
    first, second = (logging.Formatter().format(r) for r in records)
    assert "Traceback" in first and first.endswith("ValueError: sources file not found")
    assert (
        second == "Engine execution exited with unexpected exception (ValueError; traceback above)"
    )
    fail_as_the_engine_logs_it(logger)  # another failure: its own traceback again
    assert records[2].exc_info is not None and records[3].exc_info is None


def test_importing_the_flows_installs_it_on_prefect_s_flow_run_logger():
    import flows  # noqa: F401

    filters = logging.getLogger(FLOW_RUN_LOGGER).filters
    assert sum(isinstance(f, TracebackOnce) for f in filters) == 1
