"""`users.csv` (`email,slack_id`, optionally `name`): how people of another tool map to Slack user ids."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from opsloop.errors import ConfigError

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def read_users(path: Path) -> dict[str, str]:
    """Lower-case email (and name, when the file has a `name` column) -> Slack user id."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or ()]
    if not {"email", "slack_id"} <= set(header) or set(header) - {"email", "slack_id", "name"}:
        raise ConfigError(f"{path}: the header must be email,slack_id (and optionally name); got "
                          f"{','.join(header) or 'nothing'}")
    people: dict[str, str] = {}
    problems = []
    for number, row in enumerate(reader, start=2):
        email = (row.get("email") or "").strip()
        slack_id = (row.get("slack_id") or "").strip()
        name = (row.get("name") or "").strip()
        if not EMAIL.match(email):
            problems.append(f"{path}: row {number}: email: {email!r} is not an email address")
        if not SLACK_USER.match(slack_id):
            problems.append(f"{path}: row {number}: slack_id: {slack_id!r} is not a Slack user id (U...)")
            continue
        people[email.lower()] = slack_id
        if name:
            people[name.lower()] = slack_id
    if problems:
        raise ConfigError("\n".join(problems))
    return people
