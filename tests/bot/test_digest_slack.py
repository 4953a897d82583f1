"""The digest in Slack: Block Kit within limits, the chart through the external upload flow, and text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.bootstrap import Services
from bot.cli import main
from bot.slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, render
from bot.slack.wiring import wire_slack
from opsloop.digest import render as digest_render
from tests.bot.mock_slack import Answer, MockSlack
from tests.bot.test_slack_sender import pump, rows
from tests.core.digest.dataset import seed
from tests.support import FakeClock

LEADER = "U0CEO"


def test_the_digest_and_its_chart_reach_the_thread_through_the_upload_flow(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    seed(slack_services.db)
    # the upload URL fails once: the flow starts again and the file is shared once
    mock_slack.script("upload", Answer(503))
    slack_services.commands.handle("/digest", "", actor=LEADER)
    pump(dispatcher, clock, rounds=20, step=2)
    [post] = mock_slack.ok_calls("chat.postMessage")
    assert post.params["channel"] == "C0LEAD"
    assert post.params["text"].startswith("📊 Operations digest for Sun 22 Nov 2026")
    assert len(post.params["blocks"]) <= MAX_BLOCKS
    asked = mock_slack.ok_calls("files.getUploadURLExternal")
    assert len(asked) == 2 and asked[0].params["filename"] == "mttr-2026-11-22.png"
    assert "Authorization" not in {k.title() for k in mock_slack.upload_calls[0][1]}  # the URL is the permission
    [shared] = mock_slack.ok_calls("files.completeUploadExternal")
    digest_row = rows(slack_services)[-2]
    assert (shared.params["channel_id"], shared.params["thread_ts"]) == ("C0LEAD", digest_row.external_id)
    [file] = json.loads(shared.params["files"])
    assert file == {"id": "F00002", "title": "Daily incident MTTR to 2026-11-22"}  # the second URL's file
    png = mock_slack.uploads[file["id"]]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and int(asked[1].params["length"]) == len(png)
    assert [r.status for r in rows(slack_services)[-2:]] == ["sent", "sent"]


def test_block_kit_stays_within_slacks_limits_with_many_rows(services: Services) -> None:
    seed(services.db)
    digest = services.digests.build()
    long = digest.figures.breaches[0]
    digest.figures.breaches = [long.__class__(long.ref, "x" * 280, long.severity, long.target, long.tenants * 40)] * 8
    blocks = render(digest_render.message(digest))
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= MAX_SECTION_TEXT
        assert len(block.get("fields", [])) <= 10
    fields = [f["text"] for b in blocks for f in b.get("fields", [])]
    assert "*MTTR*\ninc 1h 30m ✅ · week 2h 00m · target 1h 30m" in fields
    assert "*At risk*\n2 accounts · $130,000 ARR" in fields
    body = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b)
    assert "Acme &lt;Corp&gt;" in body and "<Corp>" not in body  # account names escaped in mrkdwn


def test_plain_text_rendering_carries_every_figure(services: Services) -> None:
    seed(services.db)
    text = digest_render.text(services.digests.build())
    for line in ("Opened:         2 (2 inc · 0 esc · 0 exc)",
                 "MTTA:           inc 7m ✅ · week 11m · target 10m",
                 "SLA attainment: response 100% (2/2) · week 67% (2/3)",
                 "Breaches:       1 · $100,000 ARR touched",
                 "Feedback loops: 2 open on 2 items",
                 "• INC-1 sev1 missed resolution: Checkout <!channel> down — Acme <Corp> ($100,000)",
                 "• Acme <Corp> — $100,000 ARR · renews 2026-12-01 (in 8d) · score 35",
                 "• ESC-1 acknowledged for 3d 0h: Initech cannot export",
                 "In control this week (2 day(s) within the limits); daily incident MTTR, XmR chart over 4 "
                 "trailing days: centre 2h 00m, limits 0s to 5h 32m (MR̄ 1h 20m)."):
        assert line in text, line
    assert "*" not in text.replace("MR̄", "")  # no mrkdwn in plain text


def test_opsloop_digest_print(services: Services, capsys: object, monkeypatch: object) -> None:
    seed(services.db)
    settings = services.settings
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", settings.database_url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OPSLOOP_CONFIG", str(settings.config))  # type: ignore[attr-defined]
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(settings.runbooks_dir))  # type: ignore[attr-defined]
    assert main(["digest", "--print"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith("📊 Operations digest for ")
    assert datetime.now(UTC).year >= 2026 and "Remediation:" in out
