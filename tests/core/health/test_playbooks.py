"""Playbooks as versioned files: validated strictly, suggested by reason, pinned by plays. Checked like
runbooks (`opsloop playbooks check`): tests/bot/test_playbooks_cli.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop.errors import ConfigError, InvalidInput
from opsloop.health.models import HealthPlayStep
from opsloop.health.playbooks import Playbooks, parse
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock

SHIPPED = ROOT / "playbooks"


def test_the_shipped_playbooks_load_and_follow_the_top_reason() -> None:
    library = Playbooks(SHIPPED)
    assert library.problems() == []
    assert library.suggest(["renewal", "usage"]) == "executive-outreach"
    assert library.suggest(["usage"]) == "technical-deep-dive"
    assert library.suggest(["open_escalations"]) == "service-review"
    assert library.suggest([]) == "credit"  # none answers: the first usable one


@pytest.mark.parametrize(("edit", "problem"), [
    (("version: 1.0.0", "version: 1.0"), "version: write the version as quoted text"),
    (("version: 1.0.0", "version: '1.0'"), "version: '1.0' is not a semantic version"),
    (("reasons: [nps]", "reasons: [weather]"), "reasons: unknown reason 'weather'"),
    (("    due: 8h", "    due: soon"), "steps[0].due: invalid duration 'soon'"),
    (("    due: 8h", "    due: 0s"), "steps[0].due: duration '0s' must be longer than zero"),
    (("owners: [U0CSM1]", "owners: []"), "owners: List should have at least 1 item"),
    (("summary:", "summry:"), "summry: unknown key"),
    (("id: credit", "id: refund"), "id: 'refund' must match the file name (credit.yaml)"),
])
def test_a_bad_playbook_names_the_key(edit: tuple[str, str], problem: str) -> None:
    text = (SHIPPED / "credit.yaml").read_text().replace(*edit, 1)
    with pytest.raises(ConfigError) as error:
        parse(text.encode(), "playbooks/credit.yaml", expected_id="credit")
    assert problem in str(error.value)


def test_a_bad_playbook_stops_the_start(tmp_path: Path, db_url: str, clock: FakeClock) -> None:
    (tmp_path / "credit.yaml").write_text("schema_version: 1\nid: credit\n")
    sources = Sources(database_url=db_url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks",
                      playbooks_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"credit.yaml: version: required"):
        assemble(sources, clock=clock)


def test_a_running_play_keeps_its_steps_when_the_file_changes(
        tmp_path: Path, db_url: str, clock: FakeClock) -> None:
    folder = tmp_path / "playbooks"
    shutil.copytree(SHIPPED, folder)
    sources = Sources(database_url=db_url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks",
                      playbooks_dir=folder)
    services = assemble(sources, clock=clock)
    try:
        services.commands.handle("/health", "take globex playbook:credit", actor="U0CSM1")
        path = folder / "credit.yaml"
        path.write_text(path.read_text().replace("version: 1.0.0", "version: 1.1.0")
                        .replace("Offer it to the customer", "Offer it in person"))
        services.commands.handle("/health", "take initech playbook:credit", actor="U0CSM1")
        with services.db.transaction() as session:
            titles = [(s.play_id, s.title.split(" with")[0]) for s in session.exec(
                select(HealthPlayStep).where(HealthPlayStep.position == 1).order_by(col(HealthPlayStep.play_id)))]
        assert titles == [(1, "Offer it to the customer"), (2, "Offer it in person")]
        card = services.commands.handle("/health", "play PLAY-2", actor="U0CSM1").text
        assert "credit 1.1.0" in card
    finally:
        services.db.dispose()


def test_a_retired_playbook_refuses_and_a_deprecated_one_warns(
        tmp_path: Path, db_url: str, clock: FakeClock) -> None:
    folder = tmp_path / "playbooks"
    shutil.copytree(SHIPPED, folder)
    for name, status in (("credit", "retired"), ("service-review", "deprecated")):
        path = folder / f"{name}.yaml"
        path.write_text(path.read_text().replace("status: active", f"status: {status}"))
    sources = Sources(database_url=db_url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks",
                      playbooks_dir=folder)
    services = assemble(sources, clock=clock)
    try:
        with pytest.raises(InvalidInput, match="playbook credit is retired"):
            services.commands.handle("/health", "take globex playbook:credit", actor="U0CSM1")
        reply = services.commands.handle("/health", "take globex playbook:service-review", actor="U0CSM1")
        assert reply.text.endswith("⚠️ playbook service-review is deprecated.")
        assert services.health.playbooks.suggest(["nps"]) != "credit"  # never suggested once retired
    finally:
        services.db.dispose()
