"""Every start records its configuration; a change of roles or permissions is audited with the difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from opsloop.compliance.models import ConfigStart
from opsloop.compliance.startup import fingerprint, record_start
from opsloop.db import Database
from opsloop.models import AuditEvent
from opsloop.policy_loader import load_policy
from opsloop.runbooks.loader import Library
from tests.core.compliance.chain import verdict
from tests.support import ROOT, FakeClock


def start(db: Database, clock: FakeClock, policy_path: Path, runbooks: Path = ROOT / "runbooks") -> None:
    found = fingerprint(policy_path, load_policy(policy_path), Library(runbooks))
    record_start(db, clock, found, mode="serve")
    clock.advance(minutes=5)


def events(db: Database) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))


def test_each_start_records_hashes_and_only_changes_are_audited_as_such(db: Database, clock: FakeClock,
                                                                        tmp_path: Path) -> None:
    policy = tmp_path / "opsloop.yml"
    policy.write_text((ROOT / "opsloop.yml").read_text())
    start(db, clock, policy)
    start(db, clock, policy)
    first, first_roles, second = events(db)
    assert (first.action, first_roles.action, second.action) == ("config.started", "roles.changed", "config.started")
    after: Any = first.after
    assert after["first"] is True and after["mode"] == "serve" and len(after["policy_sha256"]) == 64
    assert after["runbooks"]["db-failover"] == [None, "1.0.0"]  # every runbook is new at the first start
    assert first_roles.after is not None and first_roles.after["roles"]["commander"] == ["U0RESP1"]
    assert first_roles.after["permissions"]["incident.close"] == ["admin", "commander"]
    assert second.after is not None and (second.after["first"], second.after["changed"]) == (False, [])
    assert second.after["runbooks"] == {}

    text = policy.read_text()
    policy.write_text(text.replace("  commander: [U0RESP1]", "  commander: [U0RESP1, U0RESP2]")
                      .replace("  incident.close: [commander, admin]", "  incident.close: [admin]"))
    start(db, clock, policy)
    third, diff = events(db)[3:]
    assert third.after is not None and third.after["changed"] == ["policy", "roles"]
    assert diff.action == "roles.changed"
    assert diff.before == {"permissions": {"incident.close": ["admin", "commander"]}, "roles": {"commander": ["U0RESP1"]}}
    assert diff.after == {"permissions": {"incident.close": ["admin"]}, "roles": {"commander": ["U0RESP1", "U0RESP2"]}}
    with db.transaction() as session:
        rows = session.exec(select(ConfigStart).order_by(col(ConfigStart.id))).all()
    assert [r.roles_sha256 == rows[0].roles_sha256 for r in rows] == [True, True, False]
    assert rows[2].roles["permissions"]["incident.close"] == ["admin"]
    assert verdict(db).ok


def test_a_changed_runbook_is_named_with_its_versions(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    source = (ROOT / "runbooks" / "db-failover.yaml").read_text()
    (runbooks / "db-failover.yaml").write_text(source)
    start(db, clock, ROOT / "opsloop.yml", runbooks)
    (runbooks / "db-failover.yaml").write_text(source.replace("version: 1.0.0", "version: 1.1.0"))
    start(db, clock, ROOT / "opsloop.yml", runbooks)
    last: Any = events(db)[-1]
    assert last.after["changed"] == ["runbooks"]
    assert last.after["runbooks"] == {"db-failover": ["1.0.0", "1.1.0"]}
