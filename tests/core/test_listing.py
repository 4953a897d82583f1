"""Lists and search: `/incident list [open|resolved|closed|all] [sevN] [tenant:ID] [since:7d] [mine] ["text"]`,
the same for /escalate and /exception; newest first, 20 a page with the total and "next", never cut silently."""

from __future__ import annotations

import re

import pytest
from sqlmodel import func, select

from opsloop.core import Core
from opsloop.errors import OpsloopError
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from opsloop.present.lists import NEXT
from tests.support import FakeClock

COMMANDER, RESPONDER, CSM, APPROVER = "U0RESP1", "U0RESP2", "U0CSM1", "U0SRE1"


def listed(text: str) -> list[str]:
    """The refs of a list reply, in order."""
    return re.findall(r"^• (\w+-\d+) ", text, flags=re.MULTILINE)


def run(services: Core, command: str, text: str, actor: str = COMMANDER) -> str:
    return services.commands.handle(command, text, actor=actor).text


def test_list_closed_shows_only_closed_incidents_with_age_and_state(services: Core,
                                                                    clock: FakeClock) -> None:
    """The issue's example: `/incident list closed` ignored its argument."""
    for title in ("Checkout down", "Login slow", "Search stale"):
        run(services, "/incident", f'declare "{title}" sev2')
        clock.advance(minutes=10)
    for text in ("ack INC-1", "resolve INC-1", 'close INC-1 --force "steps tracked elsewhere"'):
        run(services, "/incident", text)
    run(services, "/incident", "resolve INC-2")
    clock.advance(hours=2)
    closed = run(services, "/incident", "list closed")
    assert listed(closed) == ["INC-1"]
    assert "• INC-1 [sev2] Checkout down — closed · 2h30m old" in closed
    assert "*Closed incidents* — 1-1 of 1, newest first" in closed
    assert listed(run(services, "/incident", "list resolved")) == ["INC-2"]
    assert listed(run(services, "/incident", "list")) == ["INC-3"]
    assert listed(run(services, "/incident", "list open")) == ["INC-3"]
    everything = run(services, "/incident", "list all")
    assert listed(everything) == ["INC-3", "INC-2", "INC-1"]  # newest first
    assert "• INC-3 [sev2] Search stale — triggered · 2h10m old" in everything
    assert run(services, "/incident", "list closed sev1") == "No closed incidents (sev1)."


def test_filters_by_severity_tenant_age_mine_and_title_words(services: Core, clock: FakeClock) -> None:
    run(services, "/incident", 'declare "EU database primary down" sev1 tenant:acme')
    clock.advance(days=3)
    run(services, "/incident", 'declare "Invoice export 100% slow" sev3 tenant:globex', actor=RESPONDER)
    clock.advance(hours=1)
    run(services, "/incident", 'declare "Database replica lag" sev3')
    run(services, "/incident", "comms INC-1 @U0RESP2")
    assert listed(run(services, "/incident", "list sev1")) == ["INC-1"]
    assert listed(run(services, "/incident", "list sev3")) == ["INC-3", "INC-2"]
    assert listed(run(services, "/incident", "list tenant:acme")) == ["INC-1"]
    assert listed(run(services, "/incident", "list since:2d")) == ["INC-3", "INC-2"]
    assert listed(run(services, "/incident", "list since:30m")) == ["INC-3"]
    # mine: owner, comms owner or declarer
    assert listed(run(services, "/incident", "list mine", actor=RESPONDER)) == ["INC-2", "INC-1"]
    assert listed(run(services, "/incident", 'list "database"')) == ["INC-3", "INC-1"]
    assert listed(run(services, "/incident", 'list "100%"')) == ["INC-2"]  # % is a character, not a wildcard
    assert listed(run(services, "/incident", 'list "0_"')) == []
    assert listed(run(services, "/incident", 'list sev3 "database" since:1d mine')) == ["INC-3"]
    text = run(services, "/incident", 'list all sev1 tenant:acme "primary"')
    assert "*All incidents* (sev1, tenant acme, title has “primary”) — 1-1 of 1" in text


def test_twenty_a_page_with_the_total_and_next(services: Core, clock: FakeClock) -> None:
    for n in range(45):
        services.workitems.open_escalation(actor=CSM, title=f"Customer issue {n + 1}", tenants=["acme"])
        clock.advance(minutes=1)
    first = services.commands.handle("/escalate", 'list tenant:acme "issue"', actor=CSM)
    assert listed(first.text) == [f"ESC-{n}" for n in range(45, 25, -1)]
    assert "— 1-20 of 45, newest first" in first.text
    assert "25 more: `/escalate list open tenant:acme 'issue' page:2` or press Next" in first.text
    assert first.message is not None
    (button,) = first.message.buttons
    assert (button.label, button.action) == ("Next 20", NEXT)
    second = services.commands.press(button.action, button.value, actor=CSM)
    assert listed(second.text) == [f"ESC-{n}" for n in range(25, 5, -1)]
    assert "— 21-40 of 45" in second.text
    assert second.message is not None
    third = services.commands.press(NEXT, second.message.buttons[0].value, actor=CSM)
    assert listed(third.text) == ["ESC-5", "ESC-4", "ESC-3", "ESC-2", "ESC-1"]
    assert "— 41-45 of 45" in third.text and third.message is None and "more" not in third.text
    typed = run(services, "/escalate", "list tenant:acme 'issue' page:3", actor=CSM)
    assert typed == third.text
    past = run(services, "/escalate", "list page:4", actor=CSM)
    assert past.startswith("Page 4 is past the end: 45 escalations match, 3 pages of 20.")


def test_exception_lists_use_exception_states(services: Core) -> None:
    services.commands.handle("/exception", '"Skip the freeze" expires:4h', actor=RESPONDER)
    services.commands.handle("/exception", '"Deploy on Friday"', actor=RESPONDER)
    services.commands.press("workitem.approve", "EXC-1", actor=APPROVER)
    services.commands.press("workitem.reject", "EXC-2", actor=APPROVER)
    approved = run(services, "/exception", "list approved")
    assert "• EXC-1 [sev4] Skip the freeze — approved · 4h left · <1m old" in approved
    assert listed(run(services, "/exception", "list rejected")) == ["EXC-2"]
    assert listed(run(services, "/exception", "list")) == ["EXC-1"]
    with pytest.raises(OpsloopError, match=r"'closed' is not understood \(it takes open, requested, approved"):
        run(services, "/exception", "list closed")


def counts(services: Core) -> tuple[int, int, int]:
    with services.db.transaction() as session:
        return tuple(session.exec(select(func.count()).select_from(table)).one()  # type: ignore[return-value]
                     for table in (WorkItem, AuditEvent, OutboxMessage))


@pytest.mark.parametrize(("command", "text", "says"), [
    ("/incident", "list closd", "'closd' is not understood — did you mean closed?"),
    ("/incident", "list sev5", "'sev5' is not a severity"),
    ("/incident", "list tenant:nosuch", "unknown tenant nosuch"),
    ("/incident", "list since:soon", "since: invalid duration 'soon'"),
    ("/incident", "list page:0", "'0' is not a page number from 1 to 10000"),
    ("/incident", "list database", "'database' is not understood (it takes"),
    ("/incident", "list open closed", "give a list"),
    ("/escalate", "list sinc:7d", "unknown option 'sinc:' — did you mean since:?"),
])
def test_list_mistakes_are_refused_and_change_nothing(services: Core, command: str, text: str,
                                                      says: str) -> None:
    run(services, "/incident", 'declare "x"')
    before = counts(services)
    with pytest.raises(OpsloopError) as refused:
        run(services, command, text)
    assert says in str(refused.value)
    assert counts(services) == before


@pytest.mark.parametrize("value", ["/runbook run generic-incident INC-1", "nonsense",
                                   "/incident page:2; declare x"])
def test_a_forged_next_button_runs_nothing_but_a_list(services: Core, value: str) -> None:
    before = counts(services)
    with pytest.raises(OpsloopError):
        services.commands.press(NEXT, value, actor=COMMANDER)
    with pytest.raises(OpsloopError):
        services.commands.press("list.declare", "/incident x", actor=COMMANDER)
    assert counts(services) == before
