"""The digest's customer figures: NRR over the year's renewals, ARR by band, plays opened, closed, overdue."""

from __future__ import annotations

from datetime import UTC, datetime

from opsloop.core import Core
from opsloop.present import digest as render
from tests.support import FakeClock

CSM = "U0CSM1"


def test_nrr_arr_by_band_and_plays_in_the_digest(services: Core, clock: FakeClock) -> None:
    clock.current = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)  # Thursday of the reported week
    services.health.recompute(["acme", "globex", "initech"], cause="test")  # all 100: healthy
    services.commands.handle("/health", "take initech", actor=CSM)  # PLAY-1
    clock.current = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # Sunday: the reported day
    services.commands.handle("/health", "take globex playbook:service-review", actor=CSM)  # PLAY-2
    services.commands.handle("/health", 'close PLAY-1 saved "fixed their SSO"', actor=CSM)
    at = clock.now().isoformat()
    services.health.ingest([{"tenant": "globex", "kind": "usage", "value": -1, "at": at},
                            {"tenant": "globex", "kind": "nps", "value": -100, "at": at},
                            {"tenant": "acme", "kind": "renewal", "outcome": "expanded", "value": 600000,
                             "at": "2026-10-31T00:00:00Z"}], source="crm")
    clock.current = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    c = services.digests.build().figures.customers
    assert (c.retention.renewals, c.retention.nrr, c.retention.grr) == (1, 1.25, 1.0)
    assert c.arr_by_band == {"healthy": 480000 + 12000, "at-risk": 96000}
    assert (c.opened, c.closed) == ({"day": 1, "week": 2}, {"day": {"saved": 1}, "week": {"saved": 1}})
    assert (c.open_now, c.overdue_now) == (1, 0)
    clock.current = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # Tuesday evening: its first step is late
    built = services.digests.build()
    assert built.figures.customers.overdue_now == 1
    text = render.text(built)
    assert f"{'NRR:':<16}125% · gross 100%" in text
    assert f"{'ARR by band:':<16}healthy $492,000" in text and "at-risk $96,000" in text
    assert f"{'Plays:':<16}0 opened · closed: none" in text and "1 open, 1 overdue" in text
