"""`/health ACCOUNT` shows the account's 90-day availability against its contract (the digest: test_figures)."""

from __future__ import annotations

from opsloop.core import Core
from opsloop.types import Severity
from tests.support import FakeClock

CSM = "U0CSM1"


def test_health_of_an_at_risk_account_shows_its_availability_against_the_contract(
        services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor="U0RESP1", title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    clock.advance(minutes=30)
    services.workitems.act(actor="U0RESP1", ref="INC-1", action="resolve")
    reply = services.commands.handle("/health", "acme", actor=CSM)
    assert "at-risk" in reply.text  # a sev1 on an enterprise account renewing within 90 days
    assert reply.message is not None
    assert dict(reply.message.fields)["Availability"] == (
        "99.976% over 90 days · contract 99.99%: missed (30m of 12m58s allowed)")
    quiet = services.commands.handle("/health", "initech", actor=CSM).message
    assert quiet is not None
    assert dict(quiet.fields)["Availability"] == "100.000% over 90 days · contract 99.5%: met (no downtime of " \
                                                "10h48m allowed)"
