"""The redesign trigger fires once when a step is bypassed more than `threshold` times in the window."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import ConfigError
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock

STARTER, RESPONDER = "U0RESP2", "U0RESP1"


def notices(services: Core) -> list[OutboxMessage]:
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("redesign:"))
                           .order_by(col(OutboxMessage.id))))


def bypass(services: Core, n: int, verb: str = "skip") -> None:
    ref = services.workitems.declare(actor=STARTER, title=f"drill {n}").ref
    services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    services.commands.handle("/runbook", f'{verb} {ref} check "dashboards were down ({n})"', actor=RESPONDER)


def test_fires_exactly_once_at_the_crossing_with_the_evidence(rb_services: Core,
                                                              clock: FakeClock) -> None:
    rule = rb_services.policy.runbooks.redesign
    assert rule is not None and rule.threshold == 3 and rule.channel is None  # the sample policy
    for n in range(1, 4):
        bypass(rb_services, n, "skip" if n % 2 else "workaround")
        clock.advance(days=1)
    assert notices(rb_services) == []
    # automatic skips (a false `when`) never count: every run above skipped `never` by itself
    bypass(rb_services, 4)
    sent = notices(rb_services)
    assert [m.target for m in sent] == ["U0SRE1"]  # the drill's owner, by DM
    message = Message.from_json(sent[0].payload["message"])
    assert "step `check` was bypassed 4 times in the last 30d" in message.text
    assert [line.split(":")[0] for line in (message.body or "").splitlines()] == [
        "• INC-1", "• INC-2", "• INC-3", "• INC-4"]
    assert "worked around by <@U0RESP1>" in (message.body or "")
    bypass(rb_services, 5)
    assert len(notices(rb_services)) == 1
    with rb_services.db.transaction() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "runbook.redesign_requested")).all()
        assert [(e.subject, (e.after or {})["count"]) for e in events] == [("runbook:drill", 4)]


def test_bypasses_outside_the_window_do_not_count(rb_services: Core, clock: FakeClock) -> None:
    for n in range(1, 5):
        bypass(rb_services, n)
        clock.advance(days=11)  # never more than 3 within 30 days
    assert notices(rb_services) == []


def test_a_channel_in_the_policy_and_unknown_names_are_refused_at_start(
        db_url: str, runbooks_dir: Path, tmp_path: Path, clock: FakeClock) -> None:
    text = (ROOT / "opsloop.yml").read_text()
    policy = tmp_path / "opsloop.yml"
    policy.write_text(text.replace("redesign: {threshold: 3, window: 30d}",
                                   "redesign: {threshold: 3, window: 30d, channel: nowhere}"))
    sources = Sources(database_url=db_url, config=policy, runbooks_dir=runbooks_dir)
    with pytest.raises(ConfigError, match=r"runbooks\.redesign\.channel: unknown channel 'nowhere'"):
        assemble(sources, clock=clock)
    policy.write_text(text.replace("runbook: db-failover", "runbook: db-failover-v2"))
    with pytest.raises(ConfigError, match=r"routing\[1\].runbook: no runbook 'db-failover-v2'"):
        assemble(sources, clock=clock)
    policy.write_text(text)
    (runbooks_dir / "drill.yaml").write_text((runbooks_dir / "drill.yaml").read_text()
                                             .replace("channel: ops", "channel: war-room"))
    with pytest.raises(ConfigError, match=r"drill.yaml: steps\[3\] \(tell\).channel: unknown channel"):
        assemble(sources, clock=clock)
