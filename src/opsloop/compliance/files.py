"""Writing evidence files once: atomically, and never over an existing file with other content.

A checkpoint copy is evidence: a writer must not be able to replace one it
wrote earlier (or someone else's). The content goes to a temporary file that
is fsynced, then hard-linked to its name, which fails if the name exists.
Writing the same bytes again (a retried delivery) is a success.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class WriteRefused(Exception):
    """The file cannot be written and trying again will not help."""


def write_once(directory: Path, name: str, content: bytes) -> Path:
    """Write `content` to directory/name; OSError for what may pass (a full disk, a missing mount)."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise WriteRefused(f"refusing the file name {name!r}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if path.exists():
        if path.read_bytes() == content:
            return path
        raise WriteRefused(f"{path} exists with other content; evidence files are never overwritten")
    temporary = directory / f".{name}.{secrets.token_hex(6)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            if path.read_bytes() != content:
                raise WriteRefused(f"{path} exists with other content; evidence files are never "
                                   "overwritten") from None
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            if path.exists():  # a filesystem without hard links: check, then rename
                raise WriteRefused(f"{path} exists already; evidence files are never overwritten") from None
            temporary.rename(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
