"""`opsloop history import FILE` gives a new install history: the next digest judges this week against it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Services
from bot.cli import main
from opsloop.history.formats import CSV_COLUMNS
from opsloop.models import WorkItem
from opsloop.present import digest as render
from tests.bot.test_digest_slack import use
from tests.support import FakeClock


def history_csv(path: Path, end: datetime) -> None:
    """Six weeks before `end`: a sev2 a day resolved in 2 h, a sev1 every third day resolved in 40 min."""
    lines = [",".join(CSV_COLUMNS)]
    for day in range(1, 43):
        opened = end - timedelta(days=day, hours=3)
        lines.append(f"d{day},incident,Past sev2 {day},sev2,acme,checkout,{opened.isoformat()},"
                     f"{(opened + timedelta(minutes=5)).isoformat()},{(opened + timedelta(hours=2)).isoformat()}")
        if day % 3 == 0:
            lines.append(f"s{day},incident,Past sev1 {day},sev1,,,{opened.isoformat()},,"
                         f"{(opened + timedelta(minutes=40)).isoformat()}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_imported_history_gives_the_next_digest_its_control_limits(
    services: Services, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use(services, monkeypatch)
    before = services.digests.build()
    assert before.control.unjudged == "history"  # a new install: nothing to draw limits from
    path = tmp_path / "history.csv"
    history_csv(path, end=datetime(2026, 11, 16, tzinfo=UTC))  # the six weeks before this week
    assert main(["history", "import", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path} (csv): 56 imported, 0 updated, 0 unchanged, opened 2026-10-04")
    # this week, live: a sev3 that took 9 hours, resolved yesterday
    item = services.workitems.declare(actor="U0RESP1", title="Checkout slow", severity=None)
    clock.current = datetime(2026, 11, 22, 9, tzinfo=UTC)
    with services.db.transaction() as session:  # backdated: the console cannot declare in the past
        row = session.get(WorkItem, item.id)
        assert row is not None
        row.created_at, row.resolved_at, row.state = clock.current - timedelta(hours=9), clock.current, "resolved"
    clock.current = datetime(2026, 11, 23, 9, tzinfo=UTC)
    digest = services.digests.build()
    c = digest.control
    assert c.judged and c.unjudged is None and len(c.trailing) == 28  # every trailing day, from the import
    assert c.centre is not None and c.upper is not None and c.upper < 9 * 3600  # limits from imported MTTRs
    assert [p.value for p in c.beyond] == [9 * 3600]  # so this week's 9 h stands out
    text = render.text(digest)
    assert "Out of control: 1 day(s) of this week beyond a limit (Sun 22 Nov 9h 00m)" in text
    # 28 sev2 at 2 h and 9 sev1 at 40 min in the four weeks before: (28 * 120 + 9 * 40) / 37 = 100.5 min
    assert "the four weeks before: MTTR 1h 40m (37 resolved on 28 day(s))" in text
    assert main(["history", "import", str(path)]) == 0  # again: the same ids update, never duplicate
    assert "0 imported, 0 updated, 56 unchanged" in capsys.readouterr().out
