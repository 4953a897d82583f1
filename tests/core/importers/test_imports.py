"""PagerDuty and Grafana OnCall exports (sample files written from their documented JSON) become
fragments that the policy loader accepts, pasted into the sample policy; what cannot map is reported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from opsloop.errors import ConfigError
from opsloop.importers import grafana, pagerduty
from opsloop.importers.fragment import People, check, duration, merged, slug
from opsloop.oncall import rotation_shift
from opsloop.policy_loader import load_policy, load_yaml
from opsloop.present.imports import report_markdown
from tests.support import ROOT

HERE = Path(__file__).parent
NOW = datetime(2026, 11, 26, 9, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def accepted(fragment: dict[str, object], tmp_path: Path) -> object:
    """The fragment pasted into the sample opsloop.yml, read by the loader opsloop starts with."""
    combined, collisions = merged(load_yaml(ROOT / "opsloop.yml"), fragment)
    assert collisions == []
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(combined, sort_keys=False), encoding="utf-8")
    return load_policy(path)


def test_a_pagerduty_export_becomes_a_fragment_the_policy_loader_accepts(tmp_path: Path) -> None:
    asked: list[str] = []

    def lookup(email: str) -> str | None:  # the directory (Slack's users.lookupByEmail) finds Dan
        asked.append(email)
        return "U0DAN" if email == "dan@example.com" else None

    people = People({"alice@example.com": "U0ALICE", "bob@example.com": "U0BOB"}, lookup)
    fragment = pagerduty.convert(HERE / "pagerduty", people, now=NOW)
    assert fragment.oncall == {
        "sre-primary": {"rotation": ["U0ALICE", "U0BOB"], "handoff": "mon 09:00", "length": "1w",
                        "timezone": "Europe/Berlin", "anchor": "2026-01-05"},
        "database-follow-the-sun": {"ical": "schedules/database-follow-the-sun.ics", "timezone": "UTC"},
    }
    assert fragment.escalation == {
        "sre-escalation": {"repeat": 2, "levels": [{"notify": ["oncall:sre-primary"], "wait": "10m"},
                                                   {"notify": ["U0DAN"], "wait": "15m"}]},
        "db-team": {"repeat": 0, "levels": [{"notify": ["oncall:database-follow-the-sun"], "wait": "30m"}]},
    }
    assert fragment.integrations == [
        {"name": "checkout-api", "kind": "events_v2", "token_env": "OPSLOOP_ROUTING_KEY_CHECKOUT_API"},
        {"name": "postgres", "kind": "alertmanager", "token_env": "OPSLOOP_TOKEN_POSTGRES"}]
    assert fragment.routing == [{"match": {"service": "checkout-api"}, "escalation": "sre-escalation"},
                                {"match": {"service": "postgres"}, "escalation": "db-team"}]
    assert sorted(asked) == ["carol@example.com", "dan@example.com"]
    policy = accepted(fragment.policy(), tmp_path)
    # the rotation hands over as PagerDuty's layer did: Monday 09:00 Berlin, Alice then Bob, weekly
    rotation = policy.oncall["sre-primary"]  # type: ignore[attr-defined]
    assert rotation_shift(rotation, BERLIN, datetime(2026, 11, 23, 8, 59, tzinfo=BERLIN)).user == "U0BOB"
    assert rotation_shift(rotation, BERLIN, datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)).user == "U0ALICE"
    report = report_markdown(fragment, people)
    assert "- Carol Diaz <carol@example.com> (PUSER3)" in report
    assert ("Database follow-the-sun (PSCHED2) → `oncall.database-follow-the-sun` follows an iCal feed, because "
            "of 2 current layers: save https://acme.pagerduty.com/private/0123abcd/feed/PSCHED2 as "
            "schedules/database-follow-the-sun.ics") in report
    assert "SRE escalation, level 2: Carol Diaz (user_reference) is left out: not mapped" in report
    assert "Checkout API: Email is not an Events API v2 or Alertmanager integration; not imported" in report
    # the upcoming override is a command to type; the past one is gone
    assert "`/oncall override sre-primary <@U0BOB> until 2026-12-02 09:00 from 2026-12-01 09:00`" in report
    assert "2026-01-10" not in report


def test_a_grafana_oncall_export_becomes_a_fragment_the_policy_loader_accepts(tmp_path: Path) -> None:
    people = People({"bob@example.com": "U0BOB"})
    fragment = grafana.convert(HERE / "oncall", people, now=NOW)
    assert fragment.oncall == {
        "primary": {"rotation": ["U0ALICE", "U0BOB"], "handoff": "mon 09:00", "length": "1w",
                    "timezone": "Europe/Berlin", "anchor": "2026-01-05"},
        "vendor-calendar": {"ical": "schedules/vendor-calendar.ics", "timezone": "UTC"},
    }
    assert fragment.escalation == {"default": {"repeat": 5, "levels": [
        {"notify": ["oncall:primary"], "wait": "5m"}, {"notify": ["U0BOB"], "wait": "15m"},
        {"notify": ["S0SRE"], "wait": "5m"}]}}
    assert fragment.integrations == [{"name": "grafana-blush", "kind": "alertmanager",
                                      "token_env": "OPSLOOP_TOKEN_GRAFANA_BLUSH"}]
    assert fragment.routing == [{"match": {"service": "grafana-blush"}, "escalation": "default"}]
    accepted(fragment.policy(), tmp_path)
    report = report_markdown(fragment, people)
    assert "- carol <carol@example.com> (UCAROL9X)" in report  # alice came with her Slack id
    assert "Default: 1 person(s) not mapped to Slack; left out" in report
    assert "Default: the step `trigger_webhook` has no counterpart here; left out" in report
    assert "Legacy webhook: type `webhook` is not an Alertmanager webhook" in report
    assert "the route `us-(east|west)` (to default) matches raw payloads" in report
    assert "save https://example.com/meow_calendar.ics as schedules/vendor-calendar.ics" in report


def test_check_uses_the_policy_loader_and_names_collisions(tmp_path: Path) -> None:
    fragment = {"oncall": {"sre": {"ical": "sre.ics"}},
                "escalation": {"broken": {"levels": [{"notify": ["oncall:nowhere"], "wait": "5m"}]}}}
    problems, collisions = check(ROOT / "opsloop.yml", fragment)
    assert collisions == ["oncall.sre"]
    assert problems == ["escalation.broken.levels[0].notify: unknown on-call team 'nowhere'"]


def test_names_and_durations() -> None:
    taken: set[str] = set()
    assert [slug("SRE Primary", taken), slug("sre primary!", taken), slug("24/7 Ops", taken)] == [
        "sre-primary", "sre-primary-2", "x-24-7-ops"]
    assert [duration(s) for s in (604800, 86400 * 2, 43200, 300, 45)] == ["1w", "2d", "12h", "5m", "45s"]


def test_a_folder_without_exports_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*\.json files"):
        pagerduty.convert(tmp_path, People({}), now=NOW)
    (tmp_path / "x.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"x\.json: cannot read it as JSON"):
        grafana.convert(tmp_path, People({}), now=NOW)
    with pytest.raises(ConfigError, match="not a folder"):
        pagerduty.convert(tmp_path / "missing", People({}), now=NOW)
