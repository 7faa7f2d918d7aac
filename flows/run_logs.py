"""A flow run's log holds the traceback of the exception that failed it once.

Prefect's engine logs a flow run's exception with its traceback when the run fails ("Encountered
exception during execution: ..."), sets the run Failed, and then, in a deployment's flow-run
process, logs the same exception with its traceback again as it leaves the run ("Engine execution
exited with unexpected exception"). :class:`TracebackOnce` keeps the second line and drops its
traceback, which the log already holds. The run's state message (the one-line reason) is not
touched.

Plain :mod:`logging` only: installed when the ``flows`` package is imported, before Prefect is.
"""

from __future__ import annotations

import logging

#: The logger of Prefect's flow-run engine (``prefect.logging.loggers.flow_run_logger``).
FLOW_RUN_LOGGER = "prefect.flow_runs"


class TracebackOnce(logging.Filter):
    """Drop the traceback of a record whose exception was the last one logged with its traceback."""

    def __init__(self) -> None:
        super().__init__()
        # one reference, released at its repeat: the engine logs the repeat right after the first
        self._last: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        if exc is None:
            return True
        if exc is self._last:
            self._last = None
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.msg} ({type(exc).__name__}; traceback above)"
        else:
            self._last = exc
        return True


def install_traceback_once() -> None:
    """Add :class:`TracebackOnce` to Prefect's flow-run logger, once per process."""
    logger = logging.getLogger(FLOW_RUN_LOGGER)
    if not any(isinstance(f, TracebackOnce) for f in logger.filters):
        logger.addFilter(TracebackOnce())
