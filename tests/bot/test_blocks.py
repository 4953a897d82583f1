"""Block Kit rendering stays inside Slack's limits, whatever the message."""

from __future__ import annotations

import json

from bot.slack.actions import ACTION_ID, action_of
from bot.slack.blocks import (
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_FIELDS,
    MAX_SECTION_TEXT,
    form_metadata,
    form_values,
    modal,
    render,
)
from opsloop.commands.workitems import DECLARE_FORM
from opsloop.messages import Button, Message, link_button


def texts(blocks: list[dict]) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return out


def test_a_card_renders_headline_fields_buttons_and_context() -> None:
    message = Message(text="🔴 INC-1 DB down", fields=[("Severity", "sev1"), ("State", "triggered")],
                      buttons=[Button("Acknowledge", "workitem.acknowledge", "INC-1", "primary")],
                      context="incident opened by <@U1>")
    blocks = render(message)
    assert [b["type"] for b in blocks] == ["section", "section", "actions", "context"]
    assert blocks[0]["text"] == {"type": "mrkdwn", "text": "*🔴 INC-1 DB down*"}
    assert [f["text"] for f in blocks[1]["fields"]] == ["*Severity*\nsev1", "*State*\ntriggered"]
    assert blocks[2]["elements"] == [{
        "type": "button", "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
        "action_id": "workitem.acknowledge", "value": "INC-1", "style": "primary"}]


def test_huge_messages_stay_within_every_limit_and_keep_their_buttons() -> None:
    message = Message(text="x" * 5000, fields=[(f"f{n}", "v" * 2500) for n in range(35)],
                      body=("line of body text\n" * 10000), context="c" * 4000,
                      buttons=[Button("B" * 100, "workitem.resolve", "INC-1")] * 30)
    blocks = render(message)
    assert len(blocks) == MAX_BLOCKS
    assert all(len(t) <= MAX_SECTION_TEXT for t in texts(blocks))
    assert all(len(b.get("fields", [])) <= MAX_FIELDS for b in blocks)
    assert all(len(f["text"]) <= 2000 for b in blocks for f in b.get("fields", []))
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert len(buttons) == 30 and all(len(e["text"]["text"]) <= MAX_BUTTON_TEXT for e in buttons)
    assert all(len(b["elements"]) <= 25 for b in blocks if b["type"] == "actions")
    assert blocks[-1]["type"] == "context"  # the context survives; the body was cut
    assert "more than Slack shows" in blocks[-4]["elements"][0]["text"]


def test_repeated_button_actions_get_unique_ids_that_map_back() -> None:
    message = Message(text="t", buttons=[Button("Done", "runbook.done", "R-1:a"),
                                         Button("Done", "runbook.done", "R-1:b")])
    ids = [e["action_id"] for b in render(message) if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["runbook.done", "runbook.done#1"]
    assert all(ACTION_ID.match(i) and action_of(i) == "runbook.done" for i in ids)


def test_a_form_becomes_a_modal_and_its_submission_comes_back_as_values() -> None:
    view = modal(DECLARE_FORM, channel="C0OPS")
    assert view["callback_id"] == "incident.declare"
    severity = view["blocks"][1]["element"]
    assert severity["type"] == "static_select"
    assert severity["initial_option"]["value"] == "sev3"
    assert view["blocks"][2]["optional"] is True
    state = {"values": {"title": {"title": {"type": "plain_text_input", "value": "DB down"}},
                        "severity": {"severity": {"type": "static_select",
                                                  "selected_option": {"value": "sev1"}}},
                        "tenants": {"tenants": {"type": "plain_text_input", "value": None}}}}
    submitted = {**view, "state": state}
    assert form_values(submitted) == {"title": "DB down", "severity": "sev1", "tenants": ""}
    assert form_metadata(submitted) == ("", "C0OPS")
    assert form_metadata({"private_metadata": json.dumps(["not", "a", "mapping"])}) == ("", None)


def test_a_link_button_opens_its_url_and_its_press_maps_to_the_link_family() -> None:
    button = link_button("Runbook ↗", "https://runbooks.example/crashloop")
    [actions] = [b for b in render(Message(text="x", buttons=[button])) if b["type"] == "actions"]
    [element] = actions["elements"]
    assert element["url"] == "https://runbooks.example/crashloop"
    assert ACTION_ID.match(element["action_id"]) and action_of(element["action_id"]) == "link.open"
