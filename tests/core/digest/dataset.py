"""A hand-built week of operations whose digest figures are worked out by hand (see EXPECTED notes).

"Now" is Mon 23 Nov 2026 10:00 Europe/Berlin (the FakeClock's 09:00 UTC); the
reported day is Sun 22 Nov, the week 16-22 Nov, the trailing weeks 19 Oct-15 Nov.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from opsloop.db import Database
from opsloop.health.models import HealthScore
from opsloop.loops.models import FeedbackLoop
from opsloop.models import Account, OutboxMessage, WorkItem, WorkItemTenant
from opsloop.remediation.models import RemediationCall
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun
from opsloop.sla.models import SlaClock

BERLIN = ZoneInfo("Europe/Berlin")


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


class Builder:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.numbers: dict[str, int] = {}

    def item(self, kind: str, severity: str, created: datetime, *, acked: datetime | None = None,
             resolved: datetime | None = None, state: str | None = None, tenants: tuple[str, ...] = (),
             title: str = "something broke") -> WorkItem:
        number = self.numbers[kind] = self.numbers.get(kind, 0) + 1
        prefix = {"incident": "INC", "escalation": "ESC", "exception": "EXC"}[kind]
        item = WorkItem(ref=f"{prefix}-{number}", kind=kind, number=number, title=title, severity=severity,
                        state=state or ("resolved" if resolved else "acknowledged" if acked else "triggered"),
                        created_by="U0RESP1", created_at=created, updated_at=resolved or acked or created,
                        acknowledged_at=acked, resolved_at=resolved)
        self.session.add(item)
        self.session.flush()
        for tenant in tenants:
            self.session.add(WorkItemTenant(work_item_id=item.id, tenant_id=tenant))
        return item

    def clock(self, item: WorkItem, target: str, seconds: int, state: str, settled: datetime) -> None:
        self.session.add(SlaClock(work_item_id=item.id or 0, target=target, policy_index=0, calendar="24x7",
                                  target_seconds=seconds, started_at=item.created_at, state=state,
                                  settled_at=settled, due_at=item.created_at + timedelta(seconds=seconds)))


def seed(db: Database, *, out_of_control: bool = False, young: bool = False) -> None:
    """`young`: a new install whose record starts on Fri 13 Nov (no trailing weeks, nothing long ago)."""
    with db.transaction() as session:
        b = Builder(session)
        for tid, name, arr, renewal in (("acme", "Acme <Corp>", 100_000, date(2026, 12, 1)),
                                        ("globex", "Globex", 50_000, None),
                                        ("initech", "Initech", 30_000, date(2027, 3, 1))):
            session.merge(Account(id=tid, name=name, arr=arr, renewal_date=renewal, tier="enterprise"))
        session.flush()
        # the reported day (Sun 22 Nov)
        inc1 = b.item("incident", "sev1", local(22, 10), acked=local(22, 10, 4), resolved=local(22, 11),
                      tenants=("acme",), title="Checkout <!channel> down")
        b.clock(inc1, "response", 300, "met", local(22, 10, 4))
        b.clock(inc1, "resolution", 3600, "breached", local(22, 11))
        inc2 = b.item("incident", "sev2", local(22, 12), acked=local(22, 12, 10), resolved=local(22, 14),
                      tenants=("acme", "globex"))
        b.clock(inc2, "response", 900, "met", local(22, 12, 10))
        b.clock(inc2, "resolution", 7200, "met", local(22, 14))
        # earlier in the week
        inc3 = b.item("incident", "sev2", local(18, 9), acked=local(18, 9, 20), resolved=local(18, 12))
        b.clock(inc3, "response", 900, "breached", local(18, 9, 15))
        b.clock(inc3, "resolution", 7200, "breached", local(18, 11))
        esc1 = b.item("escalation", "sev3", local(20, 10), acked=local(22, 9), tenants=("initech",),
                      title="Initech cannot export")
        b.item("exception", "sev4", local(21, 8), state="requested", title="Skip the freeze")
        if out_of_control:  # a 6 h resolution on Fri 20 Nov: above the upper limit (5h 32m 48s)
            b.item("incident", "sev3", local(20, 8), resolved=local(20, 14))
        # the trailing weeks: daily MTTRs 2h, 1h, 3h, 2h
        for day, hours in () if young else ((2, 2), (3, 1), (5, 3), (10, 2)):
            b.item("incident", "sev3", local(day, 8), resolved=local(day, 8 + hours))
        # today (not reported) and long ago (outside every window), or the young record's first item
        b.item("incident", "sev1", local(23, 8), acked=local(23, 8, 1), resolved=local(23, 9))
        if young:
            b.item("escalation", "sev4", local(13, 9), resolved=local(13, 10))
        else:
            b.item("incident", "sev1", local(1, 8, month=9), resolved=local(1, 9, month=9))
        # health: acme turned at-risk, globex recovered, initech at-risk
        for tid, at, band, score in (("acme", local(20, 8), "healthy", 90), ("acme", local(22, 8), "at-risk", 35),
                                     ("globex", local(20, 8), "at-risk", 30), ("globex", local(22, 8), "healthy", 85),
                                     ("initech", local(21, 8), "at-risk", 41)):
            session.add(HealthScore(tenant_id=tid, at=at, score=score, band=band, cause="test"))
        # feedback loops: one closed (its resolution notice sent), one whose notice failed, one not resolved
        now = local(23, 10)
        session.add(OutboxMessage(key="res:1", transport="chat", target="C1", lane="chat:C1", payload={},
                                  status="sent", next_attempt_at=now, created_at=now, sent_at=local(22, 12)))
        session.add(OutboxMessage(key="res:2", transport="chat", target="C1", lane="chat:C1", payload={},
                                  status="failed", next_attempt_at=now, created_at=now))
        for item, key, target in ((inc1, "res:1", "sales1"), (inc1, "res:2", "sales2"), (esc1, None, "sup")):
            session.add(FeedbackLoop(work_item_id=item.id or 0, audience="sales", transport="chat", target=target,
                                     opened_at=item.created_at, resolution_key=key))
        # remediation: succeeded on the day, failed in the week, one awaiting approval, one long ago
        snap = RunbookSnapshot(runbook_id="restart", version="1.0.0", sha256="x" * 64, content="", first_seen=now)
        session.add(snap)
        session.flush()
        run = RunbookRun(work_item_id=inc1.id or 0, snapshot_id=snap.id or 0, runbook_id="restart",
                         state="running", started_by="U0RESP1", created_at=now)
        session.add(run)
        session.flush()
        for position, (state, finished) in enumerate((("succeeded", local(22, 10, 30)), ("failed", local(18, 10)),
                                                      ("pending", None), ("succeeded", local(1, 9)))):
            step = RunbookStepRun(run_id=run.id or 0, step_id=f"s{position}", position=position, state="running",
                                  updated_at=now)
            session.add(step)
            session.flush()
            session.add(RemediationCall(step_run_id=step.id or 0, run_id=run.id or 0, step_id=f"s{position}",
                                        state=state, created_at=now, updated_at=now, finished_at=finished))
