"""What every scheduler job shares: it never raises into the scheduler.

A job's failure is logged (on the job's own logger, with its own words) and
the job returns its "nothing done" value; the next run retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def safely(job: Callable[[], T], *, failed: T, log: logging.Logger, message: str) -> T:
    """`job()`, or `failed` when it raised (the error and its traceback logged as `message`)."""
    try:
        return job()
    except Exception:
        log.exception(message)
        return failed
