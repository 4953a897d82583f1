"""Fixtures for the core: built as `opsloop.table.assemble` builds it, with THE table, and without `bot`
(no settings from the environment, no Slack, no adapters)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsloop.core import Core
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock


@pytest.fixture
def sources(db_url: str) -> Sources:
    """The sample policy, runbooks and playbooks, on a migrated database (each backend)."""
    return Sources(database_url=db_url, config=ROOT / "opsloop.yml",
                   runbooks_dir=ROOT / "runbooks", playbooks_dir=ROOT / "playbooks")


@pytest.fixture
def services(sources: Sources, clock: FakeClock) -> Iterator[Core]:
    """Every service of the product with THE table, on the sample policy and accounts, with a fake clock."""
    built = assemble(sources, clock=clock)
    yield built
    built.db.dispose()
