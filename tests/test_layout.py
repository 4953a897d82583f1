"""Tests mirror the house: the core's tests build the core without importing `bot`.

What a core test loads (its own modules, the conftest files above it, the helpers under tests/ it
imports, transitively) must not import `bot` or anything in it, so the core is shown to stand on its
own; tests that exercise an adapter (the CLI, the scheduler, Slack) belong in tests/bot.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module an import statement in the file names (anywhere in it, functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_bot(name: str) -> bool:
    return name == "bot" or name.startswith("bot.")


def bot_imports_reached_from_core_tests() -> list[str]:
    """Each `bot` import a core test reaches, as the chain of test modules that leads to it."""
    files = {module_name(p): p for p in TESTS.rglob("*.py")}
    roots = [module_name(p) for p in (TESTS / "core").rglob("*.py")]
    roots += ["tests.conftest", "tests.support", "tests"]  # loaded with every core test
    found: list[str] = []
    seen: set[str] = set()
    stack = [(name, [name]) for name in roots]
    while stack:
        name, chain = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in sorted(imported(files[name])):
            if is_bot(target):
                found.append(" -> ".join([*chain, target]))
            elif target in files and target not in seen:
                stack.append((target, [*chain, target]))
    return sorted(found)


def test_no_core_test_imports_bot() -> None:
    assert bot_imports_reached_from_core_tests() == []


def test_the_check_sees_a_bot_import(tmp_path: Path) -> None:
    """The check above can fail: it finds a `bot` import, however it is spelled."""
    for line in ("from bot.bootstrap import bootstrap", "import bot.settings", "import bot",
                 "def f() -> None:\n    from bot import cli"):
        path = tmp_path / "test_x.py"
        path.write_text(line + "\n")
        assert any(is_bot(name) for name in imported(path)), line
    path.write_text("from opsloop.table import assemble\nimport botocore\n")
    assert not any(is_bot(name) for name in imported(path))
