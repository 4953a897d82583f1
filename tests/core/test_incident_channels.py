"""The `incident_channels` policy key: validated strictly; channel names follow Slack's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.errors import ConfigError
from opsloop.incident_channels import channel_name
from opsloop.policy_loader import load_policy
from opsloop.types import Severity
from tests.support import ROOT


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "opsloop.yml"
    path.write_text("channels: {ops: C0OPS}\nroles: {responder: [U1]}\n" + extra)
    return path


def test_the_sample_policy_asks_for_channels_for_sev1() -> None:
    config = load_policy(ROOT / "opsloop.yml").incident_channels
    assert config is not None
    assert config.severities == [Severity.SEV1]
    assert config.invite == ["role:responder", "role:commander"]


@pytest.mark.parametrize(("extra", "problem"), [
    ("incident_channels: {severities: []}", "incident_channels.severities: List should have at least 1 item"),
    ("incident_channels: {severities: [sev9]}", "incident_channels.severities[0]"),
    ("incident_channels: {severities: [sev1], prefix: 'Inc '}", "incident_channels.prefix"),
    ("incident_channels: {severities: [sev1], invite: ['role:nobody']}",
     "incident_channels.invite[0]: unknown role 'nobody'"),
    ("incident_channels: {severities: [sev1], invite: ['oncall:sre']}",
     "incident_channels.invite[0]: on-call teams cannot be invited yet"),
    ("incident_channels: {severities: [sev1], invite: ['bob']}", "incident_channels.invite[0]: 'bob' is not"),
    ("incident_channels: {severities: [sev1], private: true}", "incident_channels.private"),
])
def test_bad_incident_channel_settings_are_refused_with_their_path(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_policy(write(tmp_path, extra))
    assert problem in str(refused.value)


def test_channel_names_follow_slacks_rules() -> None:
    assert channel_name("inc-", 7, "EU DB primary down!") == "inc-7-eu-db-primary-down"
    assert channel_name("inc-", 8, "¡¡¡") == "inc-8"
    long = channel_name("incident-", 12345, "word " * 40)
    assert len(long) <= 80 and not long.endswith("-")
    assert long.startswith("incident-12345-word-word")
