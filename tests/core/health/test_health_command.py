"""/health ACCOUNT, /health mine and /health help, as people type them."""

from __future__ import annotations

import pytest

from opsloop.core import Core
from opsloop.errors import NotFound, PermissionDenied
from opsloop.types import Severity
from tests.support import FakeClock

CSM, RESPONDER, LEADER, SALES = "U0CSM1", "U0RESP1", "U0CEO", "U0SALES2"


def test_health_account_shows_score_factors_and_trend(services: Core, clock: FakeClock) -> None:
    services.health.ingest({"tenant": "globex", "kind": "nps", "value": 20, "at": "2026-11-23T08:00:00Z"},
                           source="health")  # -8: 92
    clock.advance(days=2)
    services.workitems.declare(actor=RESPONDER, title="Exports <b>slow</b>", severity=Severity.SEV2,
                               tenants=["globex"])  # -12: 80
    reply = services.commands.handle("/health", "globex", actor=CSM)
    assert reply.text == "🟢 Globex (`globex`): health 80/100, healthy (mid-market)"
    assert reply.message is not None
    fields = dict(reply.message.fields)
    assert fields["ARR"] == "$96,000" and fields["CSM"] == "<@U0CSM1>"
    assert fields["Trend"] == "█▇ 30d -12 (92 → 80)"  # one point per local day scored
    assert fields["Prompt"] == "none"
    body = reply.message.body or ""
    assert "• Incidents -12: 1 sev2 in 30d: INC-1 (sev2) Exports &lt;b&gt;slow&lt;/b&gt;" in body  # escaped
    assert "• NPS -8: NPS 20" in body
    assert "• Usage 0: no usage signal" in body
    # by name too, case-insensitive
    assert services.commands.handle("/health", "GLOBEX", actor=LEADER).text == reply.text


def test_health_mine_lists_the_callers_accounts_most_at_risk_first(services: Core) -> None:
    services.workitems.declare(actor=RESPONDER, title="Down", severity=Severity.SEV1, tenants=["acme"])
    services.workitems.declare(actor=RESPONDER, title="Slow", severity=Severity.SEV3, tenants=["initech"])
    reply = services.commands.handle("/health", "mine", actor=CSM)
    lines = reply.text.split("\n")
    assert lines[0] == "Your accounts, most at risk first (3):"
    assert lines[1].startswith("🔴 *Acme Corp* (`acme`) 75/100 at-risk")
    assert lines[1].endswith("$480,000 · prompt open")
    assert lines[2].startswith("🟢 *Initech* (`initech`) 96/100 healthy")
    assert lines[3].startswith("🟢 *Globex* (`globex`) 100/100 healthy")
    assert services.commands.handle("/health", "", actor=CSM).text == reply.text
    assert "not the CSM of any account" in services.commands.handle("/health", "mine", actor=RESPONDER).text


def test_who_may_look(services: Core) -> None:
    with pytest.raises(PermissionDenied, match="you may not see the health for Globex"):
        services.commands.handle("/health", "globex", actor=RESPONDER)
    # the account's own sales owner may
    assert "Globex" in services.commands.handle("/health", "globex", actor=SALES).text
    with pytest.raises(NotFound, match="no account 'hooli'"):
        services.commands.handle("/health", "hooli", actor=CSM)


def test_health_help_is_in_the_command_list(services: Core) -> None:
    text = services.commands.handle("/health", "help", actor=RESPONDER).text
    assert "/health ACCOUNT" in text and "/health mine" in text
    assert "/health" in services.commands.names
