"""Reading runbook files, with errors that name the file, the step and the field.

    runbooks/restart.yaml: steps[2] (restart).request.url: the url must start with https://
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opsloop.runbooks.schema import STEP_TYPES, Runbook
from opsloop.runbooks.versions import content_hash
from opsloop.yaml_files import YamlDirectory, validated

MAX_FILE = 256 * 1024


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    source: str  # where it came from: a path, `git:REV:path` or `snapshot`
    data: bytes  # the exact bytes; the hash and the pinned snapshot are of these
    sha256: str

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def parse(data: bytes, source: str, *, expected_id: str | None = None) -> LoadedRunbook:
    """Validate one runbook's bytes; `source` names it in errors. Every declare reads the file (an
    edit counts at once) but the same bytes are validated once (`validated` memoises)."""
    runbook = validated(Runbook, data, source, expected_id, at_most=MAX_FILE, kind="runbook",
                        problems=problems)
    return LoadedRunbook(runbook, source, data, content_hash(data))


def problems(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    """Pydantic's errors as `steps[2] (restart).request.url: reason` lines."""
    lines: list[str] = []
    for problem in error.errors():
        loc, kind = problem["loc"], problem["type"]
        message = problem["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required"
        elif kind in ("union_tag_not_found", "union_tag_invalid"):
            loc = (*loc, "type")
            message = f"must be one of {', '.join(STEP_TYPES)}"
        path = _path(loc, raw)
        if kind == "value_error" and path == "(top level)":
            lines.extend(message.split("; "))  # cross-step problems carry their own paths
        elif kind == "value_error" and message.split(":")[0] in ("pattern", "default", "min_approvals"):
            lines.append(f"{path}.{message}")  # model checks that name their own field
        else:
            lines.append(f"{path}: {message}")
    return lines


def _path(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    out, skip_tag = "", False
    node: Any = raw
    for part in loc:
        if skip_tag and part in STEP_TYPES:  # the discriminated union puts the step type in the path
            skip_tag = False
            continue
        skip_tag = False
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if out.startswith("steps[") and out.count("[") == 1 and isinstance(node, dict):
                step_id = node.get("id")
                if isinstance(step_id, str):
                    out += f" ({step_id})"
                skip_tag = True
            continue
        text = str(part)
        if text.startswith(("function-", "json-or-python", "constrained-")):
            continue
        out += f".{text}" if out else text
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


class Library(YamlDirectory[LoadedRunbook]):
    """The runbooks directory, read from disk on every call.

    Reading again each time is cheap (a handful of small files) and means a
    new run always starts from the file as it is now; runs already started
    keep their pinned snapshot.
    """

    def parse_file(self, data: bytes, source: str, expected_id: str) -> LoadedRunbook:
        return parse(data, source, expected_id=expected_id)

    def unknown(self, file_id: str) -> str:
        known = ", ".join(self.ids()) or "none"
        return f"no runbook {file_id!r} in {self.directory} (known: {known})"
