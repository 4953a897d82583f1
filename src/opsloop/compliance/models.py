"""The tables of compliance evidence.

`AuditPersonal` holds the personal data of audit events outside the hashed
content: the chain hashes `hmac-sha256:<hex>`, an HMAC of the value keyed with
a random per-record salt, and this row keeps the salt and the value. Erasing a
person clears both and names the erasure event in `erased_in`; the commitment
left in the chain then reveals nothing (the salt is gone) and still verifies.

`AuditCheckpoint` is a signed statement "the chain's event `seq` has hash
`hash`", kept here and, more importantly, copied outside the database.

`ComplianceRun` is the claim of one run of a periodic job (a checkpoint slot,
a retention day): its primary key lets one replica win, like the digest's day.

`ConfigStart` is what one start ran with: hashes of the policy file, the
runbook set and the roles, and the roles and permissions themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from opsloop.models import IdRow, json_column, utc_column


class AuditPersonal(SQLModel, table=True):
    __tablename__ = "audit_personal"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    pointer: str = Field(primary_key=True, max_length=255)  # JSON Pointer into {"before", "after"}
    salt: str | None = Field(default=None, max_length=64)  # hex of 32 random bytes; NULL once erased
    value: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # canonical JSON
    erased_at: datetime | None = utc_column()
    erased_in: int | None = Field(default=None, index=True)  # the seq of the privacy.erased event


class AuditCheckpoint(IdRow, table=True):
    __tablename__ = "audit_checkpoints"

    seq: int = Field(index=True)
    hash: str = Field(max_length=64)
    at: datetime = utc_column(nullable=False)
    key_id: str = Field(max_length=64)  # SHA-256 of the public key (DER), as `openssl ... | sha256sum`
    statement: str = Field(sa_column=Column(Text, nullable=False))  # the exact signed bytes
    signature: str = Field(max_length=128)  # base64 of the Ed25519 signature
    trigger: str = Field(max_length=16)  # periodic | manual | evidence


class ComplianceRun(SQLModel, table=True):
    __tablename__ = "compliance_runs"

    job: str = Field(primary_key=True, max_length=32)  # audit.checkpoint | retention
    period: str = Field(primary_key=True, max_length=32)  # the slot or the local day it claims
    at: datetime = utc_column(nullable=False)
    outcome: dict[str, Any] = json_column(dict)


class ConfigStart(IdRow, table=True):
    __tablename__ = "config_starts"

    at: datetime = utc_column(nullable=False, index=True)
    policy_sha256: str = Field(max_length=64)
    runbooks_sha256: str = Field(max_length=64)
    roles_sha256: str = Field(max_length=64)
    roles: dict[str, Any] = json_column(dict)  # {"roles": {...}, "permissions": {...}} in effect
    runbooks: dict[str, Any] = json_column(dict)  # runbook id -> {"version", "sha256"}
