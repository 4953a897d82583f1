"""The SLA tests watch clocks that wait for a person to respond, so here a person's declaration does not
meet the response target (`sla.declared_meets_response: false`); tests/core/test_honest_clocks.py
covers the default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opsloop.table import Sources
from tests.support import ROOT


@pytest.fixture
def sources(db_url: str, tmp_path: Path) -> Sources:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["sla"]["declared_meets_response"] = False
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return Sources(database_url=db_url, config=path, runbooks_dir=ROOT / "runbooks",
                   playbooks_dir=ROOT / "playbooks")
