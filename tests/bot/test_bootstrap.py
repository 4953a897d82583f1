"""The one table: what it says happens when an incident is declared, and that everyone runs it."""

from __future__ import annotations

from sqlmodel import col, select

from bot.bootstrap import Services
from bot.slack.wiring import wire_slack
from opsloop.models import OutboxMessage
from opsloop.table import handler_table, timer_table
from opsloop.types import Severity
from tests.bot.mock_slack import MockSlack

DECLARE = ["DedicatedChannels.on_created", "Runbooks.attach", "Recurrences.on_created", "FeedbackLoops.on_created", "Sla.start_clocks",
           "Maintenance.on_created", "ExceptionApprovals.ask_approvers", "Cards.post", "Health.rescore_new_item"]


def test_declaring_an_incident_is_read_from_one_row(services: Services) -> None:
    table = services.bus.table.describe()
    assert table["ItemCreated"] == DECLARE
    # heard after the card is queued; a fleet rollout's tenants are pinned as the run starts
    assert table["RunAttached"] == ["Rollouts.pin", "Checklists.attached"]
    assert table["ClockBreached"] == ["Health.after_breach", "ClockWords.breached"]
    # the features say what happened; the words (DMs to reviewers, owners, assigners) are presenters'
    assert table["NoticeDraftPosted"] == ["NoticeWords.posted"]
    assert table["FollowUpReminded"] == ["FollowUpWords.reminded"]
    assert table["ReviewReminded"] == ["ReviewWords.reminded"]
    assert set(timer_table(services)) == {"warn", "breach", "page", "runbook.gate.expire", "exception.expire", "heartbeat.due",
                                          "maintenance.start", "maintenance.end", "health.daily",
                                          "health.snooze_end", "health.play.remind", "schedule.tick",
                                          "loops.hold", "followup.remind", "review.remind"}
    assert handler_table(services).describe() == table  # the table bootstrap installed is this one


def test_slack_mode_runs_the_same_table_as_the_console(slack_services: Services, mock_slack: MockSlack) -> None:
    before = slack_services.bus.table
    wire_slack(slack_services)
    assert slack_services.bus.table is before


def test_a_sev1_declared_queues_its_channel_then_its_card_then_the_checklist_under_it(services: Services) -> None:
    """The order the row says, as the outbox holds it: the lane of the incident's new channel
    starts with creating it, then the card, then the runbook's checklist threaded under it."""
    services.workitems.declare(actor="U0RESP1", title="EU primary down", severity=Severity.SEV1,
                               tenants=["acme"])
    with services.db.transaction() as s:
        lane = s.exec(select(OutboxMessage).where(OutboxMessage.lane == "chat:pending:INC-1")
                      .order_by(col(OutboxMessage.id))).all()
        everything = s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert [m.payload.get("op") or m.key.split(":")[0] for m in lane] == ["channel.create", "card", "runbook-run"]
    assert lane[2].thread_key == "card:INC-1"
    keys = [m.key for m in everything]
    assert keys.index("card:INC-1") < keys.index("health:prompt:1")  # the CSM hears after the channel
