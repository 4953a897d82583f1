"""Generated customer histories with known answers: accounts, daily scores, renewal outcomes,
prompts and plays, written straight into the tables (the code under test only reads them)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from opsloop.db import Database
from opsloop.health.models import HealthDaily, HealthPlay, HealthPrompt, RenewalOutcome
from opsloop.models import Account

TODAY = date(2026, 11, 23)
TIERS = ("enterprise", "mid-market", "smb")


@dataclass
class History:
    accounts: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    plays: list[dict[str, Any]] = field(default_factory=list)

    def account(self, tenant: str, *, tier: str = "mid-market", arr: int = 100_000) -> str:
        self.accounts.append({"id": tenant, "name": tenant.title(), "tier": tier, "arr": arr, "csm": "U0CSM1"})
        return tenant

    def renewal(self, tenant: str, day: date, outcome: str, *, before: int = 100_000, after: int | None = None,
                scores: dict[int, int] | None = None, units: dict[int, dict[str, float]] | None = None,
                band: Callable[[int], str] | None = None) -> None:
        """An outcome on `day`, and the daily score `days` before it for each of `scores`."""
        kept_arr = {"renewed": before, "expanded": int(before * 1.2), "contracted": before // 2, "churned": 0}
        self.outcomes.append({"tenant_id": tenant, "date": day, "outcome": outcome, "arr_before": before,
                              "arr_after": kept_arr[outcome] if after is None else after, "source": "test",
                              "recorded_at": datetime(2026, 11, 23, tzinfo=UTC)})
        for days, score in (scores or {}).items():
            at = datetime.combine(day - timedelta(days=days), datetime.min.time(), UTC) + timedelta(hours=10)
            self.daily.append({"tenant_id": tenant, "day": day - timedelta(days=days), "at": at, "score": score,
                               "band": (band or default_band)(score), "units": (units or {}).get(days, {})})

    def prompt(self, tenant: str, opened: date, status: str, playbook: str) -> None:
        self.prompts.append({"tenant_id": tenant, "csm": "U0CSM1", "score": 40, "reasons": ["usage"],
                             "playbook": playbook, "status": status, "answered_by": "U0CSM1",
                             "opened_at": datetime.combine(opened, datetime.min.time(), UTC),
                             "ended_at": datetime.combine(opened, datetime.min.time(), UTC) + timedelta(days=20),
                             "end_reason": "recovered"})

    def play(self, tenant: str, opened: date, playbook: str, outcome: str | None) -> None:
        at = datetime.combine(opened, datetime.min.time(), UTC)
        self.plays.append({"tenant_id": tenant, "owner": "U0CSM1", "playbook_id": playbook,
                           "playbook_version": "1.0.0", "playbook_sha256": "0" * 64, "opened_at": at, "score": 40,
                           "escalated_to": [], "closed_at": at + timedelta(days=10) if outcome else None,
                           "closed_by": "U0CSM1" if outcome else None, "outcome": outcome,
                           "note": "test" if outcome else None})

    def write(self, db: Database) -> None:
        with db.transaction() as session:
            for table, rows in ((Account, self.accounts), (HealthDaily, self.daily),
                                (RenewalOutcome, self.outcomes), (HealthPrompt, self.prompts),
                                (HealthPlay, self.plays)):
                if rows:
                    session.execute(insert(table), rows)


def default_band(score: int) -> str:
    return "healthy" if score >= 75 else "watch" if score >= 55 else "at-risk"


def separated(n: int, *, seed: int = 1, perfect: bool = True) -> History:
    """n renewals in the past year; lost ones score low 30/60/90 days before when `perfect`,
    otherwise scores are drawn independently of the outcome."""
    rng = random.Random(seed)
    history = History()
    for i in range(n):
        tenant = history.account(f"t{i:04d}", tier=TIERS[i % 3], arr=10_000 * (1 + i % 7))
        lost = rng.random() < 0.3
        outcome = rng.choice(("churned", "contracted")) if lost else rng.choice(("renewed", "expanded"))
        day = TODAY - timedelta(days=rng.randint(1, 300))
        if perfect:
            scores = {d: rng.randint(10, 49) if lost else rng.randint(60, 100) for d in (30, 60, 90)}
        else:
            scores = {d: rng.randint(0, 100) for d in (30, 60, 90)}
        history.renewal(tenant, day, outcome, before=10_000 * (1 + i % 7), scores=scores)
    return history
