"""Runbooks and playbooks are read the same way from their directories (opsloop.yaml_files); each
kind keeps its own parser and its own answer for an id with no file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsloop.errors import ConfigError, NotFound
from opsloop.health.playbooks import LoadedPlaybook, Playbooks
from opsloop.runbooks.loader import Library, LoadedRunbook
from tests.support import ROOT


def test_an_unknown_id_is_answered_in_each_kind_s_words(tmp_path: Path) -> None:
    shutil.copy(ROOT / "runbooks" / "db-failover.yaml", tmp_path / "db-failover.yaml")
    shutil.copy(ROOT / "playbooks" / "credit.yaml", tmp_path / "credit.yaml")
    with pytest.raises(NotFound) as runbook:
        Library(tmp_path).load("nope")
    assert str(runbook.value) == f"no runbook 'nope' in {tmp_path} (known: credit, db-failover)"
    with pytest.raises(NotFound) as playbook:
        Playbooks(tmp_path / "empty").load("../credit")  # a path is no id, and a missing directory has none
    assert str(playbook.value) == "no playbook '../credit' (known: none)"


def test_every_file_loads_or_says_what_stopped_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "runbooks" / "db-failover.yaml", tmp_path / "db-failover.yaml")
    (tmp_path / "broken.yaml").write_text("id: [\n", encoding="utf-8")
    found = dict(Library(tmp_path).load_all())
    assert sorted(found) == ["broken", "db-failover"]
    assert isinstance(found["db-failover"], LoadedRunbook) and isinstance(found["broken"], ConfigError)
    assert str(found["broken"]).startswith(str(tmp_path / "broken.yaml"))
    loaded = Playbooks(ROOT / "playbooks").load("credit")
    assert isinstance(loaded, LoadedPlaybook) and loaded.playbook.id == "credit"
