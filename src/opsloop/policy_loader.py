"""Reading the policy file, and any YAML file the way the policy is read.

YAML is read refusing duplicate keys (PyYAML would keep the last of two), and
a validation error becomes one line per problem naming its key path
(`sla.policies[0].targets: ...`), so the accounts catalog, playbooks, payload
maps and imported fragments report problems the way the policy file does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsloop.errors import ConfigError
from opsloop.policy import Policy
from opsloop.yaml_files import StrictLoader


def load_yaml(path: Path) -> Any:
    """Read a YAML file, refusing duplicate keys; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None


def format_location(loc: tuple[int | str, ...]) -> str:
    """('sla', 'policies', 0, 'targets') -> 'sla.policies[0].targets'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "json-or-python")):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def validation_problems(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors():
        path = format_location(problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        if problem["type"] == "value_error" and path == "(top level)":
            lines.extend(message.split("; "))  # cross-reference problems carry their own paths
        else:
            lines.append(f"{path}: {message}")
    return lines


def load_policy(path: Path) -> Policy:
    """Load and validate the policy file, or raise ConfigError naming each problem."""
    raw = load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the policy file must be a mapping of sections")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as error:
        problems = validation_problems(error)
        raise ConfigError("\n".join(f"{path}: {line}" for line in problems)) from None
    policy._source = path
    return policy
