"""The digest's table, and the indexes its aggregations need on other modules' tables.

A `DigestRun` is the claim of one local day's scheduled digest: its primary
key is the day, so however many replicas fire at 08:00 (or catch up after a
restart), one row and so one digest per day can exist. On-demand digests
(`/digest`, `opsloop digest`) are not runs: they are audited, never claimed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from opsloop.models import WorkItem, utc_column
from opsloop.remediation.models import RemediationCall


class DigestRun(SQLModel, table=True):
    __tablename__ = "digest_runs"

    day: date = Field(primary_key=True)  # the local date it was posted on
    posted_at: datetime = utc_column(nullable=False)
    reported_day: date  # the local day whose figures it carries (the day before `day`)
    message_key: str = Field(max_length=200)  # the outbox row of the digest (the chart threads under it)


# MTTA reads items acknowledged in the period, the remediation figures calls finished in it;
# neither column was indexed. Declared here (bound to the tables) so models.py stays as it was.
Index("ix_work_items_acknowledged_at", WorkItem.__table__.c.acknowledged_at)  # type: ignore[attr-defined]
Index("ix_remediation_calls_finished_at", RemediationCall.__table__.c.finished_at)  # type: ignore[attr-defined]
