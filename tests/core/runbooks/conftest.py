"""Core over a copy of the shipped runbooks plus a small drill runbook the tests may edit."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.core import Core
from opsloop.runbooks.runs import Runbooks
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock

DRILL = """schema_version: 1
id: drill
version: 1.0.0
status: active
title: Restart drill
owners: [U0SRE1]
inputs:
  service: {type: string, pattern: "^[a-z-]+$", required: true}
steps:
  - id: check
    type: manual
    title: "Check {{ inputs.service }} dashboards"
  - id: gate
    type: approval
    approvers: role:approver
    min_approvals: 2
  - id: restart
    type: http
    request: {url: "https://ops-api.internal/services/{{ inputs.service }}/restart"}
  - id: tell
    type: notify
    requires: [gate]
    channel: ops
    message: "{{ inputs.service }} restart approved for {{ item.id }}"
  - id: never
    type: manual
    requires: []
    when: "inputs.service == 'never'"
    title: Only for the never service
"""


@pytest.fixture
def runbooks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", directory)
    (directory / "drill.yaml").write_text(DRILL)
    return directory


@pytest.fixture
def rb_services(db_url: str, runbooks_dir: Path, clock: FakeClock) -> Iterator[Core]:
    sources = Sources(database_url=db_url, config=ROOT / "opsloop.yml", runbooks_dir=runbooks_dir)
    built = assemble(sources, clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def runbooks(rb_services: Core) -> Runbooks:
    assert rb_services.runbooks is not None
    return rb_services.runbooks
