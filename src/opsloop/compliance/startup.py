"""Every start is evidence: what configuration ran, and how roles and permissions changed.

Each start of the bot records in `config_starts`, and as a `config.started`
audit event, the SHA-256 of the policy file, of the runbook set (each
runbook's id, version and content hash) and of the roles with the
permissions in effect. When roles or permissions differ from the previous
start (or on the first), a `roles.changed` audit event carries the difference:
`before` and `after` hold the roles and permissions that changed, with their
members as they were and as they are.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.compliance.models import ConfigStart
from opsloop.db import Database
from opsloop.policy import PERMISSION_DEFAULTS, Policy
from opsloop.runbooks.loader import Library
from opsloop.types import OPSLOOP


@dataclass(frozen=True)
class Fingerprint:
    policy_sha256: str
    runbooks_sha256: str
    roles_sha256: str
    roles: dict[str, Any]
    runbooks: dict[str, Any]


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def fingerprint(policy_path: Path, policy: Policy, library: Library) -> Fingerprint:
    try:
        policy_bytes = policy_path.read_bytes()
    except OSError:
        policy_bytes = b""  # no file: the defaults ran
    runbooks: dict[str, Any] = {}
    for runbook_id, loaded in library.load_all():
        runbooks[runbook_id] = ({"error": str(loaded)[:200]} if isinstance(loaded, Exception)
                                else {"version": loaded.runbook.version, "sha256": loaded.sha256})
    permissions = {action: sorted(policy.roles_allowed(action)) for action in sorted(PERMISSION_DEFAULTS)}
    roles = {"roles": {name: sorted(members) for name, members in sorted(policy.roles.items())},
             "permissions": permissions}
    return Fingerprint(hashlib.sha256(policy_bytes).hexdigest(), _sha256_json(runbooks), _sha256_json(roles),
                       roles, runbooks)


def record_start(db: Database, clock: Clock, found: Fingerprint, *, mode: str) -> ConfigStart:
    """Record this start; audit the configuration and any change of roles or permissions."""
    now = clock.now()
    with db.transaction() as session:
        audit.lock_chain(session)
        last = session.exec(select(ConfigStart).order_by(col(ConfigStart.id).desc()).limit(1)).first()
        row = ConfigStart(at=now, policy_sha256=found.policy_sha256, runbooks_sha256=found.runbooks_sha256,
                          roles_sha256=found.roles_sha256, roles=found.roles, runbooks=found.runbooks)
        session.add(row)
        changed = [] if last is None else [name for name, a, b in (
            ("policy", last.policy_sha256, found.policy_sha256),
            ("runbooks", last.runbooks_sha256, found.runbooks_sha256),
            ("roles", last.roles_sha256, found.roles_sha256)) if a != b]
        runbooks = _runbook_changes(last.runbooks if last else {}, found.runbooks)
        audit.record(session, at=now, actor=OPSLOOP, action="config.started", subject=f"start:{mode}", after={
            "mode": mode, "host": socket.gethostname()[:64], "policy_sha256": found.policy_sha256,
            "runbooks_sha256": found.runbooks_sha256, "roles_sha256": found.roles_sha256,
            "first": last is None, "changed": changed, "runbooks": runbooks})
        if last is None or last.roles_sha256 != found.roles_sha256:
            before, after = _role_changes(last.roles if last else {}, found.roles)
            if before or after:
                audit.record(session, at=now, actor=OPSLOOP, action="roles.changed", subject="policy:roles",
                             before=before, after=after)
        session.flush()
    return row


def _runbook_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """id -> [version before, version now] for runbooks added, removed or changed since the last start."""
    out = {}
    for runbook_id in sorted(set(old) | set(new)):
        a, b = old.get(runbook_id), new.get(runbook_id)
        if a != b:
            out[runbook_id] = [(a or {}).get("version"), (b or {}).get("version")]
    return out


def _role_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for section in ("roles", "permissions"):
        a, b = old.get(section, {}), new.get(section, {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                before.setdefault(section, {})[name] = a.get(name)
                after.setdefault(section, {})[name] = b.get(name)
    return before, after
