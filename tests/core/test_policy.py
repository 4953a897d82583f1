"""The policy file is validated strictly: every problem names the file, the key path and the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from opsloop.durations import format_duration, parse_duration
from opsloop.errors import ConfigError
from opsloop.fields import parse_days
from opsloop.policy_loader import load_policy
from tests.support import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsloop.yml"
    path.write_text(text)
    return path


def sample() -> dict:
    return yaml.safe_load((ROOT / "opsloop.yml").read_text())


def test_the_shipped_sample_loads_and_every_section_is_understood() -> None:
    policy = load_policy(ROOT / "opsloop.yml")
    assert policy.channel("ops") == "C0OPS"
    assert policy.sla.policies[0].targets.response == timedelta(minutes=5)
    assert policy.escalation["sre-primary"].repeat == 2
    assert policy.oncall["sre"].length == timedelta(weeks=1)
    assert policy.digest is not None and policy.digest.days == frozenset(range(5))
    assert policy.accounts_path == ROOT / "accounts.yml"
    assert policy.routing[1].matches({"service": "db-eu-1"})
    assert not policy.routing[1].matches({"service": "api-db-eu-1"})  # anchored like Alertmanager


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(colour="blue"), "colour: unknown key"),
        (lambda p: p["sla"]["policies"][0]["targets"].update(response="fast"),
         "sla.policies[0].targets.response: invalid duration 'fast'"),
        (lambda p: p["sla"]["policies"][0]["targets"].update(response=5),
         "sla.policies[0].targets.response: a duration is written as text"),
        (lambda p: p["sla"]["policies"][0].update(warn_at=[1.5]),
         "sla.policies[0].warn_at[0]: Input should be less than 1"),
        (lambda p: p["sla"]["policies"][0].update(calendar="lunar"),
         "sla.policies[0].calendar: unknown calendar 'lunar'"),
        (lambda p: p["escalation"]["sre-primary"]["levels"][0].update(notify=["oncall:dba"]),
         "escalation.sre-primary.levels[0].notify: unknown on-call team 'dba'"),
        (lambda p: p["routing"][1].update(channel="war-room"),
         "routing[1].channel: unknown channel 'war-room'"),
        (lambda p: p["routing"][1].update(match_re={"service": "db-("}),
         "routing[1].match_re: service: invalid regular expression"),
        (lambda p: p.update(timezone="Mars/Olympus"), "timezone: unknown time zone 'Mars/Olympus'"),
        (lambda p: p["digest"].update(at=480), 'digest.at: quote times of day'),
        (lambda p: p["digest"].update(channel="nowhere"), "digest.channel: unknown channel 'nowhere'"),
        (lambda p: p["permissions"].update({"incident.fly": ["admin"]}),
         "permissions.incident.fly: unknown action"),
        (lambda p: p["permissions"].update({"incident.close": ["wizard"]}),
         "permissions.incident.close: unknown role 'wizard'"),
        (lambda p: p["integrations"].append(dict(p["integrations"][0])),
         "integrations: integration name 'prometheus' is used twice"),
        (lambda p: p["oncall"]["sre"].update(handoff="someday"), "oncall.sre.handoff"),
        (lambda p: p["sla"]["calendars"]["business"].update(days="mon-funday"),
         "sla.calendars.business.days: unknown day range"),
        (lambda p: p["channels"].pop("ops"), "channels: an `ops` channel is required"),
    ],
)
def test_bad_values_are_refused_with_file_path_and_reason(tmp_path: Path, change, expected: str) -> None:
    policy = sample()
    change(policy)
    path = write(tmp_path, yaml.safe_dump(policy))
    with pytest.raises(ConfigError) as error:
        load_policy(path)
    assert f"{path}: " in str(error.value)
    assert expected in str(error.value)


def test_duplicate_keys_are_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "channels: {ops: C1}\ntimezone: UTC\ntimezone: Europe/Berlin\n")
    with pytest.raises(ConfigError, match="duplicate key 'timezone'"):
        load_policy(path)


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_policy(write(tmp_path, "channels: [unclosed\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_policy(write(tmp_path, "- a list\n"))


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800),
                                               ("1w", 604800), ("1h30m", 5400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "-5m", "0s", "1.5h", "m5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_day_specs() -> None:
    assert parse_days("mon-fri") == frozenset({0, 1, 2, 3, 4})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days(["sat", "sun"]) == frozenset({5, 6})
    assert parse_days("daily") == frozenset(range(7))
