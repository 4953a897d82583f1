"""Prompts through the real services: crossing into at-risk, once; healthy never; snooze and take."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied
from opsloop.health.models import HealthPrompt, HealthScore
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.types import Severity
from tests.support import FakeClock

CSM, RESPONDER, ADMIN, STRANGER = "U0CSM1", "U0RESP1", "U0ADMIN", "U0NOBODY"


def signal(tenant: str, kind: str, value: float, at: str = "2026-11-23T08:00:00Z") -> dict[str, object]:
    return {"tenant": tenant, "kind": kind, "value": value, "at": at}


def prompt_dms(services: Core, to: str = CSM) -> list[Message]:
    with services.db.transaction() as session:
        rows = session.exec(select(OutboxMessage).where(
            OutboxMessage.target == to, col(OutboxMessage.key).startswith("health:prompt:"))
            .order_by(col(OutboxMessage.id))).all()
        return [Message.from_json(row.payload["message"]) for row in rows]


def prompts(services: Core) -> list[HealthPrompt]:
    with services.db.transaction() as session:
        return list(session.exec(select(HealthPrompt).order_by(col(HealthPrompt.id))))


def audit_actions(services: Core, prefix: str = "health.prompt") -> list[str]:
    with services.db.transaction() as session:
        return [a for a in session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq)))
                if a.startswith(prefix)]


def globex_at_risk(services: Core) -> None:
    """globex is mid-market (watch 75, at-risk below 55)."""
    # usage -0.5 -> 15, NPS -40 -> 20 x 140 / 200 = 14: 71, watch
    services.health.ingest([signal("globex", "usage", -0.5), signal("globex", "nps", -40)], source="health")
    assert prompt_dms(services) == []
    services.workitems.declare(actor=RESPONDER, title="Exports slow", severity=Severity.SEV2,
                               tenants=["globex"])  # -12: 59, still watch
    assert prompt_dms(services) == []
    services.workitems.open_escalation(actor=CSM, title="Globex can't export invoices",
                                       tenants=["globex"])  # -10: 49, at-risk


def test_crossing_into_at_risk_prompts_the_csm_once_with_reasons_and_buttons(services: Core) -> None:
    globex_at_risk(services)
    [dm] = prompt_dms(services)
    assert dm.text == "⚠️ Globex is at risk: health 49/100"
    fields = dict(dm.fields)
    assert fields["Score"] == "49/100 · at-risk · -10 since 2026-11-23 (was 59, watch)"
    assert (fields["ARR"], fields["Renewal"]) == ("$96,000", "2027-06-30 (in 219 days)")
    assert dm.body is not None
    why = dm.body.split("\n")
    assert why[1] == "• *Usage* -15 pts: usage trend -0.50"
    assert why[2] == "• *NPS* -14 pts: NPS -40"
    assert why[3].startswith("• *Incidents* -12 pts: 1 sev2 in 30d: INC-1 (sev2) Exports slow")
    assert "*Suggested playbook: technical-deep-dive*" in dm.body  # the top reason is usage
    assert [(b.label, b.action) for b in dm.buttons] == [
        ("Take it", "health.take"), ("Snooze 7 days", "health.snooze"), ("Not a risk", "health.dismiss")]
    assert audit_actions(services) == ["health.prompt.sent"]

    # worse still: no second prompt
    services.workitems.declare(actor=RESPONDER, title="Exports fail", severity=Severity.SEV2, tenants=["globex"])
    services.health.ingest([signal("globex", "nps", -90, "2026-11-23T08:30:00Z")], source="health")
    assert len(prompt_dms(services)) == 1
    assert len(prompts(services)) == 1


def test_a_moved_signal_says_by_how_much(services: Core) -> None:
    services.health.ingest([signal("globex", "usage", 0.1)], source="health")
    services.workitems.declare(actor=RESPONDER, title="Down", severity=Severity.SEV1, tenants=["globex"])
    services.workitems.declare(actor=RESPONDER, title="Slow", severity=Severity.SEV3, tenants=["globex"])
    assert prompt_dms(services) == []  # 100 - 25 - 4 = 71: watch
    services.health.ingest([signal("globex", "usage", -0.6, "2026-11-23T08:30:00Z")], source="health")
    [dm] = prompt_dms(services)  # usage -0.6 takes 18: 53, at-risk
    assert dm.body is not None and "usage trend -0.60 (was 0.1, moved -0.7)" in dm.body


def test_a_healthy_account_never_prompts(services: Core, clock: FakeClock) -> None:
    # initech is smb: a sev3 (-4) and NPS 60 (-4) leave it at 92
    services.health.ingest([signal("initech", "nps", 60)], source="health")
    services.workitems.declare(actor=RESPONDER, title="Slow page", severity=Severity.SEV3, tenants=["initech"])
    services.health.recompute(["initech"], cause="test")
    services.health.schedule_daily()
    clock.advance(days=1)
    services.sweeper.sweep()  # the daily recompute
    assert [h.score.score for h in services.health.mine(actor=CSM) if h.account.id == "initech"] == [92]
    assert prompt_dms(services) == [] and prompts(services) == []


def test_the_renewal_rule_prompts_for_a_sev1_on_an_enterprise_account_renewing_soon(services: Core) -> None:
    services.workitems.declare(actor=RESPONDER, title="EU primary down", severity=Severity.SEV1, tenants=["acme"])
    [dm] = prompt_dms(services)
    assert dm.text == "⚠️ Acme Corp is at risk: health 75/100"
    assert dm.body is not None
    assert dm.body.split("\n")[1] == ("• *Renewal rule*: sev1 INC-1 touched this enterprise account 69 days "
                                      "before its renewal (2027-01-31)")
    assert "*Suggested playbook: executive-outreach*" in dm.body


def test_snooze_silences_until_it_runs_out_then_prompts_again(services: Core, clock: FakeClock) -> None:
    globex_at_risk(services)
    [first] = prompts(services)
    reply = services.commands.press("health.snooze", str(first.id), actor=CSM)
    assert "snoozed by <@U0CSM1> until 2026-11-30" in reply.text
    services.workitems.declare(actor=RESPONDER, title="Again", severity=Severity.SEV3, tenants=["globex"])
    clock.advance(days=6)
    services.sweeper.sweep()
    services.health.recompute(["globex"], cause="test")
    assert len(prompt_dms(services)) == 1  # still snoozed
    clock.advance(days=1)
    services.sweeper.sweep()  # the snooze's timer: still at risk, so a new prompt
    assert len(prompt_dms(services)) == 2
    old, new = prompts(services)
    assert (old.status, old.end_reason, new.status, new.ended_at) == ("snoozed", "snooze expired", "open", None)
    assert audit_actions(services) == ["health.prompt.sent", "health.prompt.snoozed", "health.prompt.ended",
                                       "health.prompt.sent"]


def test_take_suppresses_repeats_and_recovery_ends_the_episode(services: Core, clock: FakeClock) -> None:
    globex_at_risk(services)
    [prompt] = prompts(services)
    reply = services.commands.press("health.take", str(prompt.id), actor=CSM)
    assert reply.text.startswith("Opened PLAY-1 for Globex: technical-deep-dive 1.0.0")  # see test_plays
    clock.advance(days=8)
    services.workitems.declare(actor=RESPONDER, title="More", severity=Severity.SEV2, tenants=["globex"])
    assert len(prompt_dms(services)) == 1
    # the DM was edited in place to show the answer, without buttons
    with services.db.transaction() as session:
        edit = session.exec(select(OutboxMessage).where(
            OutboxMessage.update_key == f"health:prompt:{prompt.id}")).one()
    assert Message.from_json(edit.payload["message"]).buttons == []
    # recovered: good signals and the escalation resolved lift it out of at-risk
    services.health.ingest([signal("globex", "usage", 0.2, "2026-11-30T08:00:00Z"),
                            signal("globex", "nps", 40, "2026-11-30T08:00:00Z")], source="health")
    [ended] = prompts(services)
    assert (ended.status, ended.end_reason) == ("taken", "recovered")
    # a new episode prompts again
    services.health.ingest([signal("globex", "usage", -1, "2026-11-30T09:00:00Z"),
                            signal("globex", "nps", -100, "2026-11-30T09:00:00Z")], source="health")
    assert len(prompt_dms(services)) == 2


def test_not_a_risk_is_recorded_and_suppresses_repeats(services: Core) -> None:
    globex_at_risk(services)
    [prompt] = prompts(services)
    services.commands.press("health.dismiss", str(prompt.id), actor=ADMIN)
    with pytest.raises(InvalidInput, match="already answered"):
        services.commands.press("health.take", str(prompt.id), actor=CSM)
    services.workitems.declare(actor=RESPONDER, title="More", severity=Severity.SEV1, tenants=["globex"])
    assert len(prompt_dms(services)) == 1
    [prompt] = prompts(services)
    assert (prompt.status, prompt.answered_by) == ("dismissed", ADMIN)


def test_only_the_csm_or_csm_and_admin_roles_may_answer(services: Core) -> None:
    globex_at_risk(services)
    [prompt] = prompts(services)
    with pytest.raises(PermissionDenied, match="the account's CSM or the role csm or admin"):
        services.commands.press("health.take", str(prompt.id), actor=RESPONDER)
    assert audit_actions(services, "permission.denied") == ["permission.denied"]
    [prompt] = prompts(services)
    assert prompt.status == "open"


def test_scores_are_kept_as_history_only_when_they_change(services: Core) -> None:
    globex_at_risk(services)
    services.health.recompute(["globex"], cause="again")  # nothing changed: no new row
    with services.db.transaction() as session:
        rows = session.exec(select(HealthScore.score, HealthScore.band, HealthScore.cause)
                            .where(HealthScore.tenant_id == "globex").order_by(col(HealthScore.id))).all()
    assert [tuple(r) for r in rows] == [(71, "watch", "signals from health"), (59, "watch", "INC-1 created"),
                                        (49, "at-risk", "ESC-1 created")]


def test_a_breached_sla_target_rescores_its_tenants(services: Core, clock: FakeClock) -> None:
    services.workitems.open_escalation(actor=CSM, title="Globex export", tenants=["globex"])
    before = services.health.view(actor=CSM, account="globex").score.score
    clock.current = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # past the 4 business hours
    services.sweeper.sweep()
    after = services.health.view(actor=CSM, account="globex")
    assert (before, after.score.score) == (90, 82)
    assert after.score.cause == "ESC-1 response breached"
