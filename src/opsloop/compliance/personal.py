"""Personal data outside the hashed content of the audit chain.

An audit event's `before` / `after` may hold what identifies a person: contact
emails and names, and free text (titles, notes, reasons, alert labels) that
may quote them. Hashing those values directly would make erasure impossible
without breaking the chain. So each such value is *sealed*: the chain hashes a
commitment `hmac-sha256:<hex>`, the HMAC-SHA256 of the value's canonical JSON
keyed with 32 random bytes (the per-record salt), and the salt and the value
go to the `audit_personal` side table under the event's seq and the value's
JSON Pointer (RFC 6901) into `{"before": ..., "after": ...}`.

While the value is there, anyone can check it against the commitment; once it
is erased (salt and value cleared) the commitment stays in the chain, still
hashed and linked, and reveals nothing: without the salt it cannot even be
tested against a guessed email. The event lists its sealed pointers in
`personal`, which is hashed too, so a value can be neither unsealed nor
sealed after the fact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

# keys whose values may identify a person, wherever they appear in before/after
PERSONAL_KEYS = frozenset({
    "contact_email", "contact_name", "email",  # who a customer's contact is
    "title", "note", "reason", "why", "text", "summary", "description", "comment", "message",  # free text
    "labels",  # alert labels and annotations, as senders wrote them
})
PREFIX = "hmac-sha256:"
ERASED = "[erased]"
_COMMITMENT = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")


def canonical_value(value: Any) -> str:
    """The exact text a commitment is made over (and the side table keeps)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def commit(salt: str, value: str) -> str:
    """`hmac-sha256:` + HMAC-SHA256(key=salt bytes, message=value as UTF-8), hex."""
    mac = hmac.HMAC(bytes.fromhex(salt), hashes.SHA256())
    mac.update(value.encode())
    return PREFIX + mac.finalize().hex()


def matches(commitment: str, salt: str, value: str) -> bool:
    """Does (salt, value) open `commitment`? (Compared in constant time.)"""
    if not _COMMITMENT.fullmatch(commitment):
        return False
    try:
        mac = hmac.HMAC(bytes.fromhex(salt), hashes.SHA256())
    except ValueError:
        return False
    mac.update(value.encode())
    try:
        mac.verify(bytes.fromhex(commitment.removeprefix(PREFIX)))
    except InvalidSignature:
        return False
    return True


def is_commitment(value: Any) -> bool:
    return isinstance(value, str) and _COMMITMENT.fullmatch(value) is not None


@dataclass
class Sealed:
    """before/after with personal values replaced by commitments, and what goes to the side table."""

    before: dict[str, Any] | None
    after: dict[str, Any] | None
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (pointer, salt, value)

    @property
    def pointers(self) -> list[str]:
        return [pointer for pointer, _, _ in self.rows]


def seal(before: dict[str, Any] | None, after: dict[str, Any] | None) -> Sealed:
    """Replace every personal value (a non-empty value under a key of PERSONAL_KEYS) by its commitment."""
    rows: list[tuple[str, str, str]] = []
    sealed = Sealed(_seal(before, "/before", rows), _seal(after, "/after", rows))
    sealed.rows = rows
    return sealed


def _seal(node: Any, pointer: str, rows: list[tuple[str, str, str]]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            here = f"{pointer}/{escape(str(key))}"
            if key in PERSONAL_KEYS and value not in (None, "", [], {}):
                salt = os.urandom(32).hex()
                text = canonical_value(value)
                rows.append((here, salt, text))
                out[key] = commit(salt, text)
            else:
                out[key] = _seal(value, here, rows)
        return out
    if isinstance(node, list):
        return [_seal(value, f"{pointer}/{i}", rows) for i, value in enumerate(node)]
    return node


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer; raises LookupError when there is none."""
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise LookupError(pointer)
    return node


def reveal(before: Any, after: Any, values: dict[str, Any]) -> tuple[Any, Any]:
    """before/after with each sealed pointer's value put back (or `[erased]`), for reading."""
    document = json.loads(json.dumps({"before": before, "after": after}))
    for pointer, value in values.items():
        parent_pointer, _, last = pointer.rpartition("/")
        try:
            parent = resolve(document, parent_pointer)
        except LookupError:
            continue
        token = last.replace("~1", "/").replace("~0", "~")
        if isinstance(parent, dict) and token in parent:
            parent[token] = value
        elif isinstance(parent, list) and token.isdigit() and int(token) < len(parent):
            parent[int(token)] = value
    return document["before"], document["after"]


def erasure_digest(pairs: list[tuple[int, str]]) -> str:
    """What a `privacy.erased` event records of the values it cleared: SHA-256 over the sorted
    "seq pointer" lines, so the cleared values can be neither more nor fewer than it says."""
    lines = "".join(f"{seq} {pointer}\n" for seq, pointer in sorted(pairs))
    return hashlib.sha256(lines.encode()).hexdigest()
