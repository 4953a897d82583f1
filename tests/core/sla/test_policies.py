"""Which policy holds a work item, and the policy file's new keys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.errors import ConfigError
from opsloop.models import WorkItem
from opsloop.policy_loader import load_policy
from opsloop.sla.policies import highest_tier, match_policy
from tests.support import ROOT

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def item(kind: str, severity: str, **labels: str) -> WorkItem:
    return WorkItem(ref="X-1", kind=kind, number=1, title="t", severity=severity, state="triggered",
                    created_by="U1", labels=labels, created_at=NOW, updated_at=NOW)


def test_first_match_wins_on_kind_severity_and_tier() -> None:
    policy = load_policy(ROOT / "opsloop.yml")
    assert match_policy(policy, item("incident", "sev1"), None).index == 0  # type: ignore[union-attr]
    assert match_policy(policy, item("incident", "sev3"), None) is None
    assert match_policy(policy, item("escalation", "sev3"), "enterprise").index == 2  # type: ignore[union-attr]
    assert match_policy(policy, item("escalation", "sev3"), "smb").index == 3  # type: ignore[union-attr]


def test_an_item_is_as_important_as_its_most_important_customer() -> None:
    assert highest_tier(["smb", "enterprise", "mid-market"]) == "enterprise"
    assert highest_tier(["smb"]) == "smb"
    assert highest_tier([]) is None


def test_labels_must_all_match(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.yml"
    path.write_text("channels: {ops: C1}\nsla:\n  policies:\n"
                    "    - {match: {labels: {team: db}}, targets: {response: 5s}}\n")
    policy = load_policy(path)
    assert match_policy(policy, item("incident", "sev3", team="db"), None) is not None
    assert match_policy(policy, item("incident", "sev3", team="web"), None) is None


def test_escalating_on_breach_needs_a_response_target(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.yml"
    path.write_text("channels: {ops: C1}\nroles: {commander: [U1]}\n"
                    "escalation: {c: {levels: [{notify: ['role:commander'], wait: 1m}]}}\n"
                    "sla:\n  policies:\n"
                    "    - {targets: {resolution: 1h}, escalation: c, escalate_on: breach}\n")
    with pytest.raises(ConfigError, match=r"sla.policies\[0\].*escalate_on: breach needs a response target"):
        load_policy(path)
