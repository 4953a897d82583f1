"""The console shows a run's checklist with numbered buttons, and `press N` ticks steps."""

from __future__ import annotations

import io
import re

from bot.bootstrap import Services
from bot.console import Console


def test_press_ticks_checklist_steps_in_the_console(services: Services) -> None:
    out = io.StringIO()
    console = Console(services, user="U0RESP1", out=out)
    console.run(['/incident declare "EU primary down" sev1 runbook:db-failover',
                 "/runbook run db-failover INC-1 service=db-eu-1"])
    shown = out.getvalue()
    assert "thread of INC-1 | 📋 Runbook *Database primary failover* (db-failover 1.0.0) — 0/8 steps" in shown
    done = re.findall(r"\[(\d+): Done: confirm_down\]", shown)
    assert done, shown
    console.execute(f"press {done[-1]}")
    shown = out.getvalue()
    assert "@U0RESP1 did step `confirm_down`" in shown
    assert "1/8 steps" in shown
    assert re.search(r"\[\d+: Done: check_lag\]", shown)
    skip = re.findall(r"\[(\d+): Skip: check_lag\]", shown)[-1]
    console.execute(f"press {skip}")
    assert 'usage: /runbook skip INC-1 check_lag "reason"' in out.getvalue()
