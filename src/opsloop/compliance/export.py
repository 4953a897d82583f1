"""The chain as JSON Lines: each line is what was hashed, its hash, and its personal data.

    {"seq": 7, "at": "...", "actor": "U0RESP1", "action": "incident.created", "subject": "INC-1",
     "before": null, "after": {"title": "hmac-sha256:9f2c…", ...}, "personal": ["/after/title"],
     "prev_hash": "…", "hash": "…",
     "personal_data": {"/after/title": {"value": "Checkout API returns 500", "salt": "…"}}}

The fields but `hash` and `personal_data` are exactly what the hash covers
(SHA-256 of their canonical JSON), so every line can be re-checked on its
own; each sealed value opens its commitment with
HMAC-SHA256(key=salt, message=canonical JSON of value). An erased value reads
`"[erased]"` and its commitment stays. A row that cannot be read is written
as `{"seq": N, "unreadable": "why"}` rather than stopping the export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import Session

from opsloop.compliance import reader
from opsloop.compliance.personal import ERASED


def lines(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[str]:
    span = reader.seq_range(session, since=since, until=until)
    if span is None:
        return
    yield from seq_lines(session, span[0], span[1])


def seq_lines(session: Session, first: int, last: int) -> Iterator[str]:
    for batch in reader.events(session, first=first, last=last):
        side = reader.side_rows(session, batch[0].seq, batch[-1].seq)
        for link in batch:
            yield json.dumps(row(link, side), sort_keys=True, ensure_ascii=False)


def row(link: reader.Link | reader.Unreadable, side: dict[tuple[int, str], reader.SideRow]) -> dict[str, Any]:
    if isinstance(link, reader.Unreadable):
        return {"seq": link.seq, "unreadable": link.why}
    out: dict[str, Any] = json.loads(link.canonical())
    out["hash"] = link.hash
    if link.personal:
        out["personal_data"] = {p: _personal(side.get((link.seq, p))) for p in link.personal}
    return out


def _personal(side: reader.SideRow | None) -> Any:
    if side is None or side.salt is None or side.value is None:
        return ERASED
    try:
        value = json.loads(side.value)
    except json.JSONDecodeError:
        value = side.value  # shown as stored; verify reports it
    return {"value": value, "salt": side.salt}
