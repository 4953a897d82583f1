"""The commands for switching from PagerDuty or Grafana OnCall.

`opsloop history import FILE` (past incidents) and `opsloop oncall refresh [TEAM ...] [--users FILE]`
(the iCal feeds the policy names).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.bootstrap import bootstrap
from bot.settings import Settings
from bot.slack.directory import SlackDirectory
from bot.slack.sender import web_client
from opsloop.errors import ConfigError, UsageError
from opsloop.feeds.people import read_users
from opsloop.history.service import import_history

OK = 0
CLI_ACTOR = "system:cli"


def register(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    history = sub.add_parser("history", help="past work items, for the digest and health")
    history_sub = history.add_subparsers(dest="history_command", required=True, parser_class=parser_class)
    imp = history_sub.add_parser("import", help="load past incidents (opsloop CSV, PagerDuty or Grafana "
                                                "OnCall export), closed and marked imported")
    imp.add_argument("file", type=Path)
    imp.set_defaults(run=cmd_history_import)

    oncall = sub.add_parser("oncall", help="on-call schedules")
    oncall_sub = oncall.add_subparsers(dest="oncall_command", required=True, parser_class=parser_class)
    refresh = oncall_sub.add_parser("refresh", help="load the iCal feeds of `oncall.TEAM.ical` again")
    refresh.add_argument("teams", nargs="*", metavar="TEAM", help="only these teams (default: every feed)")
    refresh.add_argument("--users", type=Path, metavar="FILE",
                         help="users.csv: email,slack_id[,name] for people the feed names by email or name")
    refresh.set_defaults(run=cmd_oncall_refresh)


def cmd_oncall_refresh(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_feeds=False)  # this command is how a feed that fails gets fixed
    feeds = services.oncall.feeds
    unknown = [t for t in args.teams if t not in feeds.teams]
    if unknown:
        raise UsageError(f"not an iCal-fed on-call team: {', '.join(unknown)} "
                         f"(feeds: {', '.join(feeds.teams) or 'none; add oncall.TEAM.ical to the policy'})")
    users = read_users(args.users) if args.users else {}
    lookup = None
    if settings.slack_bot_token is not None:  # Slack can map emails the file does not
        lookup = SlackDirectory(web_client(settings.slack_bot_token.get_secret_value(),
                                           settings.slack_api_url)).user_by_email
    problems = []
    for team in args.teams or feeds.teams:
        try:
            loaded = feeds.load(team, actor=CLI_ACTOR, users=users, lookup=lookup)
        except ConfigError as error:
            problems.append(str(error))
            continue
        state = "loaded" if loaded.changed else "unchanged"
        print(f"{team}: {feeds.path(team)} {state}: {loaded.shifts} shifts ahead, {loaded.people} people")
    if problems:
        raise ConfigError("\n".join(problems))
    return OK


def cmd_history_import(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings)
    result = import_history(services.db, services.clock, args.file, actor=CLI_ACTOR)
    span = (f", opened {result.first:%Y-%m-%d} to resolved {result.last:%Y-%m-%d}"
            if result.first and result.last else "")
    print(f"{args.file} ({result.source}): {result.created} imported, {result.updated} updated, "
          f"{result.unchanged} unchanged{span}")
    for reason, count in sorted(result.skipped.items()):
        print(f"  skipped {count}: {reason}")
    return OK
