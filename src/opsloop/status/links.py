"""Per-tenant status links: `opsloop status link TENANT` prints one, `opsloop status revoke TENANT` ends it.

A token is `<nonce>.<signature>`: a random nonce stored with the tenant, and
an HMAC-SHA256 of it made by itsdangerous' `Signer` (key derivation, URL-safe
encoding and constant-time comparison from a library that Flask's sessions
rely on, rather than our own). The key is `OPSLOOP_STATUS_KEY` when set
(several replicas then share it without the database), else one generated on
first use and kept in the `status_keys` table.

- The token names no tenant: only the database knows whose nonce it is.
- A token that is not signed with the key is refused without a query, so
  guessing costs the guesser, not the database.
- A revoked link stays revoked: `link` afterwards makes a new nonce. Changing
  `OPSLOOP_STATUS_KEY` revokes every link at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from urllib.parse import quote

from itsdangerous import BadSignature, Signer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import NotFound
from opsloop.models import Account
from opsloop.policy import Policy
from opsloop.status.models import StatusKey, StatusLink

SALT = "opsloop.status.link"
# what `opsloop serve` listens on by default: the base of links when `status.base_url` is not set
DEFAULT_BASE = "http://127.0.0.1:3000"
MAX_TOKEN = 128
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{16,64}")


class StatusLinks:
    def __init__(self, db: Database, policy: Policy, clock: Clock, key: str | None = None) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self._key = key
        self._signer: Signer | None = None

    # ------------------------------------------------------------------ the key

    def signer(self) -> Signer:
        if self._signer is None:
            key = self._key if self._key is not None else self._stored_key()
            self._signer = Signer(key, salt=SALT, digest_method=hashlib.sha256)
        return self._signer

    def _stored_key(self) -> str:
        with self.db.transaction() as session:
            row = session.get(StatusKey, 1)
            if row is not None:
                return row.key
        try:
            with self.db.transaction() as session:
                session.add(StatusKey(id=1, key=secrets.token_urlsafe(48), created_at=self.clock.now()))
        except IntegrityError:
            pass  # another replica made it first: use theirs
        with self.db.transaction() as session:
            return session.exec(select(StatusKey.key).where(StatusKey.id == 1)).one()

    # ------------------------------------------------------------------ links

    def link(self, tenant: str, *, actor: str) -> str:
        """The tenant's active token (made, and audited, when it has none)."""
        signer = self.signer()  # before the transaction: making the key is a transaction of its own
        with self.db.transaction() as session:
            audit.lock_chain(session)  # first (audit's lock order): two at once make one link, not two
            self._account(session, tenant)
            active = self._active(session, tenant)
            if active:
                return signer.sign(active[0].nonce).decode("ascii")
            now = self.clock.now()
            link = StatusLink(tenant_id=tenant, nonce=secrets.token_urlsafe(24), created_at=now,
                              created_by=actor)
            session.add(link)
            session.flush()
            audit.record(session, at=now, actor=actor, action="status.link.created",
                         subject=f"tenant:{tenant}", after={"link": link.id})
            return signer.sign(link.nonce).decode("ascii")

    def revoke(self, tenant: str, *, actor: str) -> int:
        """End the tenant's active link; how many were ended (0: it had none)."""
        with self.db.transaction() as session:
            audit.lock_chain(session)
            self._account(session, tenant)
            active = self._active(session, tenant)
            now = self.clock.now()
            for link in active:
                link.revoked_at, link.revoked_by = now, actor
                session.add(link)
            if active:
                audit.record(session, at=now, actor=actor, action="status.link.revoked",
                             subject=f"tenant:{tenant}", after={"links": [link.id for link in active]})
            return len(active)

    def tenant_of(self, token: str) -> str | None:
        """Whose page a token opens; None for anything else (malformed, forged, revoked, unknown)."""
        if len(token) > MAX_TOKEN or _TOKEN.fullmatch(token) is None:
            return None
        try:
            nonce = self.signer().unsign(token).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        if self.signer().sign(nonce).decode("ascii") != token:
            return None  # the signature's last character spelled another way (base64's spare bits): refused
        with self.db.transaction() as session:
            return session.exec(select(StatusLink.tenant_id).where(
                StatusLink.nonce == nonce, col(StatusLink.revoked_at).is_(None))).first()

    def url(self, token: str) -> str:
        base = (self.policy.status.base_url or DEFAULT_BASE).rstrip("/")
        return f"{base}/status/t/{quote(token, safe='')}"

    def opaque(self, value: str) -> str:
        """A stable name for `value` that does not reveal it (an HMAC under the status key)."""
        return self.signer().get_signature(f"opaque:{value}").decode("ascii")[:22]

    @staticmethod
    def _account(session: Session, tenant: str) -> Account:
        account = session.get(Account, tenant)
        if account is None:
            raise NotFound(f"unknown tenant {tenant!r}: no account in the catalog has that id")
        return account

    @staticmethod
    def _active(session: Session, tenant: str) -> list[StatusLink]:
        return list(session.exec(select(StatusLink).where(
            StatusLink.tenant_id == tenant, col(StatusLink.revoked_at).is_(None))
            .order_by(col(StatusLink.id))).all())
