"""The daily digest posts once a day: at its time, across replicas. And /digest is for leaders.
After a restart that straddled its time (the real scheduler): tests/bot/test_digest_schedule.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.digest.models import DigestRun
from opsloop.errors import PermissionDenied
from opsloop.messages import FILE, File, Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock, at_once

LEADER, ADMIN, RESPONDER = "U0CEO", "U0ADMIN", "U0RESP1"
PNG = b"\x89PNG\r\n\x1a\n"


def outbox_rows(services: Core) -> list[OutboxMessage]:
    with services.db.transaction() as session:
        return list(session.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("digest:"))
                                 .order_by(col(OutboxMessage.id))))


def runs(services: Core) -> list[DigestRun]:
    with services.db.transaction() as session:
        return list(session.exec(select(DigestRun)))


def test_not_before_its_time_nor_on_other_days_then_once(services: Core, clock: FakeClock) -> None:
    clock.current = datetime(2026, 11, 23, 6, 59, tzinfo=UTC)  # Mon 07:59 in Berlin
    assert services.digests.run_due() is False
    clock.current = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # a Saturday, past 08:00
    assert services.digests.run_due() is False
    clock.current = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Mon 08:00 in Berlin
    assert services.digests.run_due() is True
    assert services.digests.run_due() is False
    digest, chart = outbox_rows(services)
    assert (digest.key, digest.target) == ("digest:2026-11-23", "C0LEAD")
    assert Message.from_json(digest.payload["message"]).text.startswith("📊 Operations digest for Sun 22 Nov 2026")
    assert (chart.thread_key, chart.payload["op"]) == (digest.key, FILE)
    assert File.from_payload(chart.payload).content.startswith(PNG)
    [run] = runs(services)
    assert (run.day.isoformat(), run.reported_day.isoformat()) == ("2026-11-23", "2026-11-22")
    clock.advance(days=1)  # Tuesday: a new day, a new digest
    assert services.digests.run_due() is True
    assert len(runs(services)) == 2


@pytest.mark.postgres
def test_two_replicas_firing_at_the_same_moment_post_one_digest(postgres_url: str) -> None:
    sources = Sources(database_url=postgres_url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks")
    clock = FakeClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    replicas = [assemble(sources, clock=clock, migrate=False) for _ in range(2)]  # two engines
    try:
        for day in range(3):  # Mon, Tue, Wed
            results = at_once([replica.digests.run_due for replica in replicas])
            assert sorted(results) == [False, True], f"day {day}: {results}"
            clock.advance(days=1)
        assert len(runs(replicas[0])) == 3
        assert len([r for r in outbox_rows(replicas[0]) if r.thread_key is None]) == 3
    finally:
        for replica in replicas:
            replica.db.dispose()


def test_digest_command_is_for_leaders_and_admins(services: Core) -> None:
    with pytest.raises(PermissionDenied, match="leader or admin"):
        services.commands.handle("/digest", "", actor=RESPONDER)
    assert outbox_rows(services) == []
    with services.db.transaction() as session:
        denied = session.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")).one()
    assert (denied.actor, denied.subject) == (RESPONDER, "digest")
    for who in (LEADER, ADMIN):
        reply = services.commands.handle("/digest", "", actor=who)
        assert reply.text == "The digest is on its way to <#C0LEAD>, its chart in the thread."
    rows = outbox_rows(services)
    assert [r.thread_key is None for r in rows] == [True, False, True, False]
    assert runs(services) == []  # on demand never claims the scheduled day
    assert "/digest" in services.commands.handle("/digest", "help", actor=RESPONDER).text
