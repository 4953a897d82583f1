"""`opsloop playbooks check`: every playbook valid, and never changed without a higher version.

As for runbooks: a file that differs from its last commit must carry a higher `version` than
the committed one; a version seen with other content (in git history, or pinned by a play in
the database) is refused, so a version always names one content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opsloop.errors import ConfigError
from opsloop.health.playbooks import LoadedPlaybook, Playbooks, parse
from opsloop.runbooks.versions import Version


class History(Protocol):
    def committed(self, path: str) -> bytes | None: ...

    def revisions(self, path: str) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Pin:
    playbook_id: str
    version: str
    sha256: str


def _version_of(data: bytes) -> Version | None:
    try:
        return parse(data, "history").playbook.version_key
    except ConfigError:
        return None


def version_problems(loaded: LoadedPlaybook, *, committed: bytes | None,
                     revisions: Iterable[tuple[str, bytes]], pins: Iterable[Pin]) -> list[str]:
    book, problems = loaded.playbook, []
    current = book.version_key
    before = _version_of(committed) if committed is not None else None
    if committed is not None and committed != loaded.data and before is not None and current <= before:
        problems.append(f"changed since the last commit but its version did not increase (committed "
                        f"{before}, now {book.version}): raise `version`")
    elsewhere = {f"commit {rev[:10]}" for rev, data in revisions
                 if _version_of(data) == current and data != loaded.data}
    elsewhere |= {f"a play's pinned copy ({pin.sha256[:12]})" for pin in pins
                  if pin.playbook_id == book.id and Version.parse(pin.version) == current
                  and pin.sha256 != loaded.sha256}
    if elsewhere:
        problems.append(f"version {book.version} appears with different content in "
                        f"{', '.join(sorted(elsewhere))}: raise `version`")
    return problems


def check(library: Playbooks, *, history: History | None, pins: Sequence[Pin]) -> list[tuple[str, str]]:
    """Every problem, as (playbook id, problem)."""
    out: list[tuple[str, str]] = []
    for playbook_id, found in library.load_all():
        if isinstance(found, ConfigError):
            out += [(playbook_id, line) for line in str(found).splitlines()]
            continue
        path = str(library.path(playbook_id))
        out += [(playbook_id, p) for p in version_problems(
            found, committed=history.committed(path) if history else None,
            revisions=history.revisions(path) if history else [], pins=pins)]
    return out
