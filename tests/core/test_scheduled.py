"""A scheduler job never raises: its failure is logged on its own logger and it returns `failed`."""

from __future__ import annotations

import logging

import pytest

from opsloop.scheduled import safely

log = logging.getLogger("tests.scheduled")


def test_a_job_that_works_returns_its_result_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert safely(lambda: 3, failed=0, log=log, message="the job failed") == 3
    assert caplog.records == []


def test_a_job_that_raises_returns_failed_and_logs_the_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> int:
        raise RuntimeError("the database went away")

    assert safely(broken, failed=0, log=log, message="the job failed; the next run retries") == 0
    [record] = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == (
        "tests.scheduled", logging.ERROR, "the job failed; the next run retries")
    assert record.exc_info is not None and str(record.exc_info[1]) == "the database went away"
