"""Files the command line writes (charts, policy fragments, reports)."""

from __future__ import annotations

from pathlib import Path

from opsloop.errors import InvalidInput


def write_file(path: Path, content: bytes) -> None:
    """Write whole or not at all: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(content)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {error.strerror}") from None
