"""Where a review lives in Slack: a canvas (canvases.create, then canvases.edit per version) when the
workspace grants `canvases:write`, else a line in the item's thread with the Markdown file uploaded."""

from __future__ import annotations

from sqlmodel import select

from bot.bootstrap import Services
from bot.slack.wiring import wire_slack
from opsloop.models import OutboxMessage
from opsloop.types import Severity
from tests.bot.mock_slack import Answer, MockSlack
from tests.bot.test_slack_sender import pump
from tests.support import FakeClock

COMMANDER = "U0RESP1"


def resolve_a_sev2(services: Services) -> None:
    services.workitems.declare(actor=COMMANDER, title="EU primary down", severity=Severity.SEV2, tenants=["acme"])
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")  # sev2: the review drafts itself


def card_of(services: Services) -> OutboxMessage:
    with services.db.transaction() as session:
        return session.exec(select(OutboxMessage).where(OutboxMessage.key == "card:INC-1")).one()


def test_the_review_is_a_canvas_and_each_version_edits_it(
        slack_services: Services, mock_slack: MockSlack, clock: FakeClock) -> None:
    dispatcher = wire_slack(slack_services)
    resolve_a_sev2(slack_services)
    pump(dispatcher, clock, rounds=6)
    [create] = mock_slack.ok_calls("canvases.create")
    assert create.params["title"] == "Review of INC-1: EU primary down"
    content = create.params["document_content"]
    assert content["type"] == "markdown"
    assert content["markdown"].startswith("# Post-incident review: INC-1 EU primary down")
    assert "## Timeline" in content["markdown"] and "Acme Corp (enterprise, ARR 480,000)" in content["markdown"]
    canvas = create.answer["canvas_id"]
    card = card_of(slack_services)
    [access] = mock_slack.ok_calls("canvases.access.set")
    assert (access.params["canvas_id"], access.params["channel_ids"]) == (canvas, [card.external_target])
    assert any(c.params.get("thread_ts") == card.external_id and "a canvas" in str(c.params["text"])
               for c in mock_slack.ok_calls("chat.postMessage"))
    assert not mock_slack.ok_calls("files.completeUploadExternal")

    slack_services.reviews.save(actor=COMMANDER, ref="INC-1", values={"went_well": "failover took 3 minutes"})
    pump(dispatcher, clock, rounds=6)
    [edit] = mock_slack.ok_calls("canvases.edit")
    assert edit.params["canvas_id"] == canvas
    [change] = edit.params["changes"]
    assert change["operation"] == "replace"
    assert "failover took 3 minutes" in change["document_content"]["markdown"]
    assert len(mock_slack.ok_calls("canvases.create")) == 1


def test_without_canvases_write_it_is_a_thread_line_and_the_markdown_file(
        slack_services: Services, mock_slack: MockSlack, clock: FakeClock) -> None:
    mock_slack.script("canvases.create", Answer(200, {"ok": False, "error": "missing_scope",
                                                      "needed": "canvases:write"}))
    dispatcher = wire_slack(slack_services)
    resolve_a_sev2(slack_services)
    pump(dispatcher, clock, rounds=6)
    card = card_of(slack_services)
    [shared] = mock_slack.ok_calls("files.completeUploadExternal")
    assert (shared.params["channel_id"], shared.params["thread_ts"]) == (card.external_target, card.external_id)
    [uploaded] = mock_slack.uploads.values()
    assert uploaded.decode().startswith("# Post-incident review: INC-1 EU primary down")
    assert any(c.params.get("thread_ts") == card.external_id and
               str(c.params["text"]).startswith("📄 The review of INC-1, version 1")
               for c in mock_slack.ok_calls("chat.postMessage"))

    slack_services.reviews.save(actor=COMMANDER, ref="INC-1", values={"went_well": "failover took 3 minutes"})
    pump(dispatcher, clock, rounds=6)
    assert not mock_slack.ok_calls("canvases.edit")
    second = mock_slack.ok_calls("files.completeUploadExternal")[1]
    assert second.params["thread_ts"] == card.external_id
    assert any(b"failover took 3 minutes" in data for data in mock_slack.uploads.values())
