"""`opsloop playbooks check|list|show`: the CSM playbooks from the shell and in CI (like runbooks)."""

from __future__ import annotations

import argparse
import sys

from sqlmodel import select

from bot.runbooks_cli import GitHistory, from_database, listing, verdict
from bot.settings import Settings
from opsloop.errors import ConfigError, UsageError
from opsloop.health.models import HealthPlay
from opsloop.health.playbook_check import Pin, check
from opsloop.health.playbooks import Playbooks

OK, CHECK_FAILED = 0, 1


def register(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    playbooks = sub.add_parser("playbooks", help="validate, list and show the CSM playbooks")
    pb_sub = playbooks.add_subparsers(dest="playbooks_command", required=True, parser_class=parser_class)
    pb_sub.add_parser("check", help="validate every playbook and its version; exit 1 when one fails") \
        .set_defaults(run=cmd_check)
    pb_sub.add_parser("list", help="id, version, status, owners, title").set_defaults(run=cmd_list)
    show = pb_sub.add_parser("show", help="print a playbook")
    show.add_argument("id")
    show.set_defaults(run=cmd_show)


def _library(settings: Settings) -> Playbooks:
    if not settings.playbooks.is_dir():
        raise UsageError(f"{settings.playbooks}: no such playbooks directory (OPSLOOP_PLAYBOOKS_DIR)")
    return Playbooks(settings.playbooks)


def _pins(settings: Settings) -> list[Pin]:
    """The versions plays pinned, or none (said) when there is no usable database."""
    return from_database(settings, print, "versions pinned by plays", lambda session: [Pin(*row) for row in (
        session.exec(select(HealthPlay.playbook_id, HealthPlay.playbook_version,
                            HealthPlay.playbook_sha256).distinct()).all())]) or []


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    library = _library(settings)
    history = GitHistory.find(library.directory)
    if history is None:
        print(f"note: {library.directory} is not in a git checkout; committed versions not compared")
    problems = check(library, history=history, pins=_pins(settings))
    return verdict(problems, len(library.ids()), "playbooks")


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    return listing((pid, p if isinstance(p, ConfigError) else p.playbook)
                   for pid, p in _library(settings).load_all())


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(_library(settings).load(args.id).data.decode("utf-8"))
    return OK
