"""`opsloop review INC-n [--markdown|--json]`: the document, or the review as JSON; bad input exits 2."""

from __future__ import annotations

import hashlib
import json

import pytest
import time_machine

from bot.bootstrap import Services
from bot.cli import main
from opsloop.reviews.service import canonical
from opsloop.types import Severity
from tests.bot.test_digest_slack import use

RESP1 = "U0RESP1"


def test_opsloop_review_prints_markdown_and_json(services: Services, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use(services, monkeypatch)
    services.workitems.declare(actor=RESP1, title="EU primary down", severity=Severity.SEV2, tenants=["acme"])
    services.commands.handle("/incident", 'followup INC-1 "Alert on replica lag" due:3d', actor=RESP1)
    services.workitems.act(actor=RESP1, ref="INC-1", action="resolve")
    # the command line runs on the system clock: hold it at the test's time, or the follow-up's
    # "due" reads "overdue" once the real day passes its due date
    with time_machine.travel(services.clock.now(), tick=False):
        assert main(["review", "INC-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Post-incident review: INC-1 EU primary down")
    assert "## Follow-ups" in out and "[ ] ACT-1 Alert on replica lag — @U0RESP1, due " in out
    services.reviews.save(actor=RESP1, ref="INC-1", values={"contributing_factors": "disk", "went_well": "paging",
                                                            "went_badly": "alerting"})
    services.reviews.submit(actor=RESP1, ref="INC-1")
    services.reviews.publish(actor=RESP1, ref="INC-1")
    assert main(["review", "INC-1", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["state"], found["version"], [v["version"] for v in found["versions"]]) == ("published", 2, [1, 2])
    assert found["followups"][0]["ref"] == "ACT-1"
    view = services.reviews.get("INC-1")
    assert found["sha256"] == hashlib.sha256(canonical(view.doc, view.followups)).hexdigest()


@pytest.mark.parametrize(("argv", "says"), [(["review", "INC-9"], "no work item INC-9"),
                                            (["review", "INC-1"], "INC-1 has no review yet"),
                                            (["review", "nonsense"], "is not a work item id")])
def test_bad_input_exits_2_with_one_line(services: Services, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, argv: list[str], says: str) -> None:
    use(services, monkeypatch)
    services.workitems.declare(actor=RESP1, title="Checkout slow")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
