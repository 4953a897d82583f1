"""The digest in Slack: Block Kit within limits, the chart through the external upload flow, and text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bootstrap import Services
from bot.cli import main
from bot.slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, render
from bot.slack.wiring import wire_slack
from opsloop.present import digest as digest_render
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
                 "• sev2 opened 1 (week 2) · resolved 1 (week 2) · MTTR 2h 00m (week 2h 30m) · target 4h 00m",
                 "In control: this week's incident MTTR 2h 00m (3 resolved on 2 day(s)), every day within the "
                 "limits; the four weeks before: MTTR 2h 00m (4 resolved on 4 day(s)), daily XmR centre 2h 00m, "
                 "limits 0s to 5h 32m (MR̄ 1h 20m)."):
        assert line in text, line
    assert "*" not in text.replace("MR̄", "")  # no mrkdwn in plain text
    # each attainment line once (they were listed twice), and no chart promised where there is none
    assert text.count("resolution 50% (1/2) · week 33% (1/3)") == 1
    assert text.count("response 100% (2/2) · week 67% (2/3)") == 1
    assert "Chart" not in text


def use(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = services.settings
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OPSLOOP_CONFIG", str(settings.config))
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(settings.runbooks_dir))


def test_opsloop_digest_print(services: Services, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed(services.db)
    use(services, monkeypatch)
    assert main(["digest", "--print"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("📊 Operations digest for ")
    assert datetime.now(UTC).year >= 2026 and "Remediation:" in out
    assert "Chart" not in out  # nothing was drawn, so nothing is promised


def test_opsloop_digest_print_a_past_day_with_its_chart(services: Services, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seed(services.db)
    use(services, monkeypatch)
    chart = tmp_path / "mttr.png"
    assert main(["digest", "--print", "--date", "2026-11-22", "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("📊 Operations digest for Sun 22 Nov 2026")
    assert "• INC-1 sev1 missed resolution" in out and f"Chart: {chart}" in out
    assert "Chart in the thread" not in out
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize(("argv", "reason"), [
    (["digest", "--chart", "x.png"], "--date and --chart go with --print"),
    (["digest", "--print", "--date", "22.11.2026"], "not a date: '22.11.2026' (use YYYY-MM-DD)"),
    (["digest", "--print", "--date", "2999-01-01"], "2999-01-01 is not over yet"),
    (["digest", "--print", "--chart", "/nonexistent/dir/x.png"], "cannot write /nonexistent/dir/x.png"),
])
def test_opsloop_digest_refuses_bad_usage(services: Services, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, argv: list[str], reason: str) -> None:
    use(services, monkeypatch)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses before main returns
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    assert reason in capsys.readouterr().err
