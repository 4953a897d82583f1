"""Escalation chains: page level after level, repeat, until someone acknowledges.

A running chain is nothing but its next `page` timer: firing it pages that
level's people (`EscalationPaged`: a DM each, with an Acknowledge button, and
a line in the item's thread), and schedules the next level after the level's
`wait`. After the last
level the chain starts again, `repeat` more times; when that is spent, one
last timer says nobody answered. Acknowledging deletes the pending timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.authz import Authorizer
from opsloop.bus import Bus
from opsloop.events import EscalationExhausted, EscalationPaged
from opsloop.models import WorkItem
from opsloop.oncall import OnCall
from opsloop.policy import Policy
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, State

PAGE = "page"


@dataclass(eq=False)
class Escalations:
    policy: Policy
    authz: Authorizer
    oncall: OnCall
    bus: Bus

    def start(self, session: Session, item: WorkItem, chain: str, now: datetime) -> None:
        """Page the chain's first level at once (on the next sweep)."""
        self.stop(session, item)  # one chain at a time per item
        session.add(Timer(kind=PAGE, due_at=now, work_item_id=item.id, created_at=now,
                          payload={"chain": chain, "level": 0, "round": 0}))

    def stop(self, session: Session, item: WorkItem) -> bool:
        """Cancel the pending page; True if a chain was running."""
        result: Any = session.exec(delete(Timer).where(  # type: ignore[call-overload]
            col(Timer.work_item_id) == item.id, col(Timer.kind) == PAGE, col(Timer.fired_at).is_(None)))
        return bool(result.rowcount)

    def running(self, session: Session, item_id: int) -> Timer | None:
        return session.exec(select(Timer).where(Timer.work_item_id == item_id, Timer.kind == PAGE,
                                                col(Timer.fired_at).is_(None))).first()

    # ------------------------------------------------------------------ who is paged

    def resolve(self, session: Session, targets: list[str], now: datetime) -> list[str]:
        """`oncall:TEAM`, `role:NAME`, user ids and user groups -> user ids, in order, once each."""
        users: list[str] = []
        for target in targets:
            prefix, sep, name = target.partition(":")
            if sep and prefix == "oncall":
                who = self.oncall.on_call(session, name, now) if name in self.policy.oncall else None
                found = [who] if who else []
            elif sep and prefix == "role":
                found = [u for member in self.policy.roles.get(name, []) for u in self._expand(member)]
            else:
                found = self._expand(target)
            users += [u for u in found if u not in users]
        return users

    def _expand(self, member: str) -> list[str]:
        if member.startswith("S"):
            return sorted(self.authz.directory.members(member))
        return [member]

    # ------------------------------------------------------------------ firing

    def fire(self, session: Session, timer: Timer, item: WorkItem, now: datetime) -> str:
        """Page one level (`EscalationPaged`). Returns the timer's outcome."""
        chain_name = str(timer.payload.get("chain"))
        chain = self.policy.escalation.get(chain_name)
        if chain is None:
            return f"skipped: chain {chain_name!r} is no longer in the policy"
        if item.state != State.TRIGGERED.value:
            return f"skipped: {item.ref} is {item.state}"
        rounds = chain.repeat + 1
        if timer.payload.get("exhausted"):
            audit.record(session, at=now, actor=OPSLOOP, action="escalation.exhausted", subject=item.ref,
                         after={"chain": chain_name, "rounds": rounds})
            self.bus.publish(session, EscalationExhausted(at=now, item=item, chain=chain_name, rounds=rounds))
            return "exhausted"
        level_no, round_no = int(timer.payload["level"]), int(timer.payload["round"])
        if level_no >= len(chain.levels):
            return "skipped: the chain has fewer levels now"
        level = chain.levels[level_no]
        users = self.resolve(session, level.notify, now)
        assert timer.id is not None
        self.bus.publish(session, EscalationPaged(
            at=now, item=item, timer_id=timer.id, chain=chain_name, level=level_no + 1,
            levels=len(chain.levels), round=round_no + 1, rounds=rounds, notify=tuple(level.notify),
            users=tuple(users)))
        audit.record(session, at=now, actor=OPSLOOP, action="escalation.page", subject=item.ref,
                     after={"chain": chain_name, "level": level_no + 1, "round": round_no + 1,
                            "notify": level.notify, "users": users})
        if level_no + 1 < len(chain.levels):
            following: dict[str, Any] = {"chain": chain_name, "level": level_no + 1, "round": round_no}
        elif round_no + 1 < rounds:
            following = {"chain": chain_name, "level": 0, "round": round_no + 1}
        else:
            following = {"chain": chain_name, "exhausted": True}
        session.add(Timer(kind=PAGE, due_at=now + level.wait, work_item_id=item.id, created_at=now,
                          payload=following))
        return f"paged {', '.join(users)}" if users else "nobody to page"

