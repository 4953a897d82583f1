"""On-call from an iCal feed: recurring events across a DST change, EXDATE, overlaps, gaps, people mapped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from opsloop.authz import Authorizer
from opsloop.bus import Bus
from opsloop.commands.grammar import Context
from opsloop.commands.oncall import OnCallCommands
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.oncall import OnCall
from opsloop.people import People
from opsloop.policy_loader import load_policy
from opsloop.sla.escalation import Escalations
from tests.support import FakeClock

COMMANDER = "U0CMD"
FEED = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//opsloop tests//EN
BEGIN:VEVENT
UID:alice@feed
SUMMARY:On Call - Alice Smith - Primary
ATTENDEE;CN=Alice Smith:mailto:alice@example.com
DTSTART;TZID=Europe/Berlin:20261019T090000
DTEND;TZID=Europe/Berlin:20261026T090000
RRULE:FREQ=WEEKLY;INTERVAL=2
END:VEVENT
BEGIN:VEVENT
UID:bob@feed
SUMMARY:bob@example.com
DTSTART;TZID=Europe/Berlin:20261026T090000
DTEND;TZID=Europe/Berlin:20261102T090000
RRULE:FREQ=WEEKLY;INTERVAL=2
EXDATE;TZID=Europe/Berlin:20261109T090000
END:VEVENT
BEGIN:VEVENT
UID:carol@feed
SUMMARY:[L1] <@U0CAROL>
DTSTART;TZID=Europe/Berlin:20261109T090000
DTEND;TZID=Europe/Berlin:20261116T090000
END:VEVENT
BEGIN:VEVENT
UID:dave@feed
SUMMARY:Dave Jones
DTSTART;TZID=Europe/Berlin:20261024T110000
DTEND;TZID=Europe/Berlin:20261024T140000
END:VEVENT
END:VCALENDAR
"""
USERS = {"alice@example.com": "U0ALICE", "bob@example.com": "U0BOB", "dave jones": "U0DAVE"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def setup(tmp_path: Path, db: Database, clock: FakeClock, feed: str = FEED) -> OnCall:
    (tmp_path / "sre.ics").write_text(feed, encoding="utf-8")
    policy = {"timezone": "Europe/Berlin", "channels": {"ops": "C0OPS"}, "roles": {"commander": [COMMANDER]},
              "oncall": {"sre": {"ical": "sre.ics"}},
              "escalation": {"page": {"levels": [{"notify": ["oncall:sre"], "wait": "5m"}]}}}
    (tmp_path / "opsloop.yml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    loaded = load_policy(tmp_path / "opsloop.yml")
    return OnCall(db, loaded, clock, Authorizer(loaded, db, clock))


def who(oncall: OnCall, moment: str) -> tuple[str | None, datetime, datetime]:
    with oncall.db.transaction() as session:
        shift = oncall.shift(session, "sre", at(moment))
    return shift.user, shift.starts_at, shift.ends_at


def test_a_weekly_rrule_keeps_its_local_handoff_across_the_dst_change(tmp_path: Path, db: Database,
                                                                     clock: FakeClock) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock)
    oncall.feeds.load("sre", actor="system:cli", users=USERS)
    # summer time ends on Sun 25 Oct: alice's week began 09:00 CEST (07:00 UTC), bob's begins 09:00 CET (08:00 UTC)
    assert who(oncall, "2026-10-26T08:30:00+01:00") == ("U0ALICE", at("2026-10-24T14:00:00+02:00"),
                                                        at("2026-10-26T09:00:00+01:00"))
    assert who(oncall, "2026-10-26T09:00:00+01:00")[0] == "U0BOB"
    # an event laid over another (Dave covers Saturday 11-14) wins while it lasts
    assert who(oncall, "2026-10-24T12:00:00+02:00") == ("U0DAVE", at("2026-10-24T11:00:00+02:00"),
                                                        at("2026-10-24T14:00:00+02:00"))
    assert who(oncall, "2026-10-24T10:59:00+02:00")[0] == "U0ALICE"
    # bob's occurrence of 9 Nov is excluded (EXDATE): carol, named by her Slack id, covers it
    assert who(oncall, "2026-11-10T12:00:00+01:00") == ("U0CAROL", at("2026-11-09T09:00:00+01:00"),
                                                        at("2026-11-16T09:00:00+01:00"))
    assert who(oncall, "2026-11-17T12:00:00+01:00")[0] == "U0ALICE"  # the rule goes on
    # before the first event: a gap, nobody on call until alice starts
    nobody, _, until = who(oncall, "2026-10-19T08:00:00+02:00")
    assert (nobody, until) == (None, at("2026-10-19T09:00:00+02:00"))


def test_slash_oncall_answers_from_the_feed_and_overrides_stay_on_top(tmp_path: Path, db: Database,
                                                                     clock: FakeClock) -> None:
    clock.current = at("2026-10-26T08:30:00+01:00")
    oncall = setup(tmp_path, db, clock)
    oncall.feeds.load("sre", actor="system:cli", users=USERS)
    command, ctx = OnCallCommands(oncall).command(), Context("/oncall", "U0ANY", None, People(oncall.authz))
    assert command.run("sre", ctx).text == (
        "*sre*: <@U0ALICE> is on call until Mon 2026-10-26 09:00 CET; next: <@U0BOB> until Mon 2026-11-02 09:00 CET")
    oncall.override(actor=COMMANDER, team="sre", who="U0ERIN", until="+2h")
    assert command.run("sre", ctx).text.startswith(
        "*sre*: <@U0ERIN> is on call (override) until Mon 2026-10-26 10:30 CET; next: <@U0BOB>")
    clock.current = at("2026-10-19T08:00:00+02:00")
    assert command.run("", ctx).text == (
        "*sre*: nobody is on call (a gap in the schedule) until Mon 2026-10-19 09:00 CEST; "
        "next: <@U0ALICE> until Sat 2026-10-24 11:00 CEST")


def test_escalation_pages_whoever_the_feed_puts_on_call(tmp_path: Path, db: Database, clock: FakeClock) -> None:
    clock.current = at("2026-11-10T12:00:00+01:00")
    oncall = setup(tmp_path, db, clock)
    oncall.feeds.load("sre", actor="system:cli", users=USERS)
    chains = Escalations(oncall.policy, oncall.authz, oncall, Bus())
    with db.transaction() as session:
        assert chains.resolve(session, ["oncall:sre"], clock.now()) == ["U0CAROL"]
        assert chains.resolve(session, ["oncall:sre"], at("2026-10-19T08:00:00+02:00")) == []  # a gap: nobody


def test_nobody_is_paged_on_a_guess_an_unmapped_person_stops_the_load(tmp_path: Path, db: Database,
                                                                      clock: FakeClock) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock)
    with pytest.raises(ConfigError) as refused:
        oncall.feeds.load("sre", actor="system:cli", users={"alice@example.com": "U0ALICE"})
    message = str(refused.value)
    assert "oncall.sre.ical" in message and "2 person(s) on call from now on cannot be mapped" in message
    assert "'Dave Jones', on call from Sat 2026-10-24 11:00 CEST" in message
    assert "'bob@example.com', on call from Mon 2026-10-26 09:00 CET" in message
    with db.transaction() as session, pytest.raises(Exception, match="no schedule is loaded for sre yet"):
        oncall.feeds.shift(session, "sre", clock.now())


def test_emails_the_directory_finds_are_kept_for_the_next_load(tmp_path: Path, db: Database,
                                                              clock: FakeClock) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock)
    asked: list[str] = []

    def lookup(email: str) -> str | None:
        asked.append(email)
        return {"alice@example.com": "U0ALICE", "bob@example.com": "U0BOB"}.get(email)

    loaded = oncall.feeds.load("sre", actor="system:cli", users={"dave jones": "U0DAVE"}, lookup=lookup)
    assert (loaded.changed, loaded.people) == (True, 4)
    assert sorted(asked) == ["alice@example.com", "bob@example.com"]  # once each, however many shifts
    # the next start reads the same file with no users file and no directory: the mapping was kept
    assert oncall.feeds.load("sre", actor="opsloop").changed is False


def test_a_changed_feed_that_cannot_load_at_start_keeps_the_last_good_one(
    tmp_path: Path, db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock)
    oncall.feeds.load("sre", actor="system:cli", users=USERS)
    (tmp_path / "sre.ics").write_text(FEED.replace("bob@example.com", "zed@example.com"), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        oncall.feeds.load_on_start(actor="opsloop")
    assert "'zed@example.com', on call from Mon 2026-10-26 09:00 CET" in caplog.text
    assert "keeping the feed loaded" in caplog.text
    assert who(oncall, "2026-10-27T12:00:00+01:00")[0] == "U0BOB"


def test_with_no_feed_loaded_start_is_refused(tmp_path: Path, db: Database, clock: FakeClock) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock)
    with pytest.raises(ConfigError, match="cannot be mapped to a Slack user"):
        oncall.feeds.load_on_start(actor="opsloop")


def test_a_refresh_elsewhere_reaches_a_running_replica(tmp_path: Path, db: Database, clock: FakeClock) -> None:
    clock.current = at("2026-10-27T12:00:00+01:00")
    running = setup(tmp_path, db, clock)
    running.feeds.load("sre", actor="opsloop", users=USERS)
    assert who(running, "2026-10-27T12:00:00+01:00")[0] == "U0BOB"
    cli = setup(tmp_path, db, clock, feed=FEED.replace("bob@example.com", "U0ROBERT"))  # another process
    assert cli.feeds.load("sre", actor="system:cli").changed is True
    assert who(running, "2026-10-27T12:00:00+01:00")[0] == "U0ROBERT"


@pytest.mark.parametrize(("text", "reason"), [
    ("hello", "not an iCalendar feed"),
    ("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", "the feed has no events"),
])
def test_a_file_that_is_not_a_feed_is_refused_naming_the_key(tmp_path: Path, db: Database, clock: FakeClock,
                                                             text: str, reason: str) -> None:
    oncall = setup(tmp_path, db, clock, feed=text)
    with pytest.raises(ConfigError, match=f"oncall.sre.ical \\(.*sre.ics\\): {reason}"):
        oncall.feeds.load("sre", actor="system:cli")


def test_the_policy_takes_members_or_a_feed(tmp_path: Path) -> None:
    base = {"channels": {"ops": "C0OPS"}}
    for team, problem in (({"ical": "a.ics", "rotation": ["U1"]}, "an `ical` feed carries its own shifts: "
                                                                  "drop rotation"),
                          ({"handoff": "mon 09:00"}, "give the members")):
        (tmp_path / "p.yml").write_text(yaml.safe_dump({**base, "oncall": {"sre": team}}), encoding="utf-8")
        with pytest.raises(ConfigError, match=problem):
            load_policy(tmp_path / "p.yml")


def test_a_runaway_rule_is_refused_instead_of_expanded_without_end(tmp_path: Path, db: Database,
                                                                   clock: FakeClock) -> None:
    clock.current = at("2026-10-20T12:00:00+02:00")
    oncall = setup(tmp_path, db, clock, feed=FEED.replace("RRULE:FREQ=WEEKLY;INTERVAL=2\nEND:VEVENT\nBEGIN:VEVENT\n"
                                                          "UID:bob", "RRULE:FREQ=MINUTELY\nEND:VEVENT\nBEGIN:VEVENT\n"
                                                          "UID:bob", 1))
    with pytest.raises(ConfigError, match=r"up to 640,837 shifts in 445 days \(at most 5,000\)"):
        oncall.feeds.load("sre", actor="system:cli", users=USERS)
