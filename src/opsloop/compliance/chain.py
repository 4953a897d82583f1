"""What one link of the audit chain hashes: the shared definition for writing and checking.

An event's hash is SHA-256 over the canonical JSON (sorted keys, no spaces,
UTF-8) of its fields and the previous event's hash. `personal` (the JSON
Pointers of sealed values) is part of it only when the event has any, so
events written before personal data was sealed keep their hashes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64  # the prev_hash of event 1


def canonical(
    *, seq: int, at: datetime, actor: str, action: str, subject: str, before: Any, after: Any,
    personal: list[str] | None, prev_hash: str,
) -> bytes:
    body: dict[str, Any] = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    if personal:
        body["personal"] = personal
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
