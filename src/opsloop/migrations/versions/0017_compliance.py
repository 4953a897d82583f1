"""compliance: sealed personal data of audit events, signed checkpoints, job claims, config starts

Events written before this revision hashed personal values (contact emails,
titles, notes) directly, which would make erasing a person break the chain.
`_reseal` moves them into `audit_personal` the way opsloop.compliance.personal
does now and re-links the chain from the first such event on, then records an
`audit.resealed` event with the old head, so exports made before stay
traceable. No signed checkpoint can exist yet (the table is created here), so
nothing outside the database is contradicted. A chain that does not verify is
left exactly as it is: resealing would launder the tampering.
The code is frozen here on purpose: a migration must not change when the
package does.

Revision ID: 0017_compliance
Revises: 0016_heartbeats
Create Date: 2026-11-26 08:30:02.437607
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0017_compliance'
down_revision = '0016_heartbeats'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_seq'), ['seq'], unique=False)

    op.create_table('audit_personal',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('pointer', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('erased_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('erased_in', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('seq', 'pointer')
    )
    with op.batch_alter_table('audit_personal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_personal_erased_in'), ['erased_in'], unique=False)

    op.create_table('compliance_runs',
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('outcome', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('job', 'period')
    )
    op.create_table('config_starts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('policy_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('runbooks_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('roles_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('roles', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('runbooks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('config_starts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_config_starts_at'), ['at'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('personal', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
    _reseal(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('personal')

    with op.batch_alter_table('config_starts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_config_starts_at'))

    op.drop_table('config_starts')
    op.drop_table('compliance_runs')
    with op.batch_alter_table('audit_personal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_personal_erased_in'))

    op.drop_table('audit_personal')
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_seq'))

    op.drop_table('audit_checkpoints')


PERSONAL_KEYS = frozenset({"contact_email", "contact_name", "email", "title", "note", "reason", "why", "text",
                           "summary", "description", "comment", "message", "labels"})


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(event: dict[str, Any]) -> str:
    body = {k: event[k] for k in ("seq", "at", "actor", "action", "subject", "before", "after", "prev_hash")}
    if event.get("personal"):
        body["personal"] = event["personal"]
    return hashlib.sha256(_dumps(body).encode()).hexdigest()


def _seal(node: Any, pointer: str, rows: list[tuple[str, str, str]]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key in PERSONAL_KEYS and value not in (None, "", [], {}):
                salt, text = os.urandom(32).hex(), _dumps(value)
                rows.append((here, salt, text))
                out[key] = "hmac-sha256:" + hmac.new(bytes.fromhex(salt), text.encode(), hashlib.sha256).hexdigest()
            else:
                out[key] = _seal(value, here, rows)
        return out
    if isinstance(node, list):
        return [_seal(v, f"{pointer}/{i}", rows) for i, v in enumerate(node)]
    return node


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _at(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC).isoformat(timespec="microseconds")


def _reseal(connection: sa.Connection) -> None:
    events = [{"seq": r.seq, "at": _at(r.at), "actor": r.actor, "action": r.action, "subject": r.subject,
               "before": _json(r.before), "after": _json(r.after), "prev_hash": r.prev_hash, "hash": r.hash}
              for r in connection.execute(sa.text(
                  'SELECT seq, at, actor, action, subject, "before", "after", prev_hash, hash '
                  "FROM audit_events ORDER BY seq"))]
    previous = "0" * 64
    for number, event in enumerate(events, start=1):
        if event["seq"] != number or event["prev_hash"] != previous or _hash(event) != event["hash"]:
            return  # not intact: leave it for `opsloop audit verify` to report, untouched
        previous = event["hash"]
    head = connection.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    if head.seq != len(events) or head.hash != previous:
        return
    jsonb = "CAST(:{} AS jsonb)" if connection.dialect.name == "postgresql" else ":{}"
    update = sa.text(f'UPDATE audit_events SET "before" = {jsonb.format("before")}, "after" = '
                     f'{jsonb.format("after")}, personal = {jsonb.format("personal")}, prev_hash = :prev_hash, '
                     "hash = :hash WHERE seq = :seq")
    insert = sa.text("INSERT INTO audit_personal (seq, pointer, salt, value) VALUES (:seq, :pointer, :salt, :value)")
    resealed, previous = 0, "0" * 64
    for event in events:
        rows: list[tuple[str, str, str]] = []
        before, after = _seal(event["before"], "/before", rows), _seal(event["after"], "/after", rows)
        if not rows and not resealed:
            previous = event["hash"]
            continue  # nothing personal before the first event that has some: those hashes stay
        resealed += 1
        event.update(before=before, after=after, personal=[r[0] for r in rows] or None, prev_hash=previous)
        event["hash"] = previous = _hash(event)
        connection.execute(update, {"seq": event["seq"], "before": json.dumps(before), "after": json.dumps(after),
                                    "personal": json.dumps(event["personal"]), "prev_hash": event["prev_hash"],
                                    "hash": event["hash"]})
        for pointer, salt, value in rows:
            connection.execute(insert, {"seq": event["seq"], "pointer": pointer, "salt": salt, "value": value})
    if not resealed:
        return
    at = datetime.now(UTC).replace(tzinfo=None)  # stored naive UTC, as opsloop.models.UTCDateTime does
    note = {"seq": len(events) + 1, "at": at.replace(tzinfo=UTC).isoformat(timespec="microseconds"),
            "actor": "system:migration", "action": "audit.resealed", "subject": "audit:chain", "before": None,
            "after": {"events": resealed, "from_seq": len(events) - resealed + 1,
                      "old_head": {"seq": head.seq, "hash": head.hash}},
            "prev_hash": previous}
    note["hash"] = _hash(note)
    connection.execute(sa.text(
        'INSERT INTO audit_events (seq, at, actor, action, subject, "before", "after", personal, prev_hash, hash) '
        f"VALUES (:seq, :at, :actor, :action, :subject, NULL, {jsonb.format('after')}, NULL, :prev_hash, :hash)"),
        {**note, "after": json.dumps(note["after"]), "at": at if connection.dialect.name == "postgresql"
         else at.strftime("%Y-%m-%d %H:%M:%S.%f")})
    connection.execute(sa.text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                       {"seq": note["seq"], "hash": note["hash"]})
