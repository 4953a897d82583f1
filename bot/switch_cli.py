"""The commands for switching from PagerDuty or Grafana OnCall.

`opsloop import pagerduty|oncall DIR [--users FILE] [--out DIR]` (schedules, escalation, integrations
and routing as a policy fragment to review), `opsloop oncall refresh [TEAM ...] [--users FILE]` (the iCal
feeds the policy names) and `opsloop history import FILE` (past incidents).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.bootstrap import bootstrap
from bot.files import write_file
from bot.settings import Settings
from bot.slack.directory import SlackDirectory
from bot.slack.sender import web_client
from opsloop.errors import ConfigError, UsageError
from opsloop.feeds.people import read_users
from opsloop.history.service import import_history
from opsloop.importers import grafana, pagerduty
from opsloop.importers.fragment import LookupEmail, People, check
from opsloop.present.imports import fragment_yaml, report_markdown

OK, CHECK_FAILED = 0, 1
CLI_ACTOR = "system:cli"


def register(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    imports = sub.add_parser("import", help="another tool's schedules, escalation and services as policy")
    imports_sub = imports.add_subparsers(dest="import_command", required=True, parser_class=parser_class)
    for vendor, what in (("pagerduty", "PagerDuty's REST API v2 JSON"),
                         ("oncall", "Grafana OnCall's public API v1 JSON")):
        vendor_parser = imports_sub.add_parser(vendor,
                                               help=f"write a policy fragment and a report from {what}")
        vendor_parser.add_argument("dir", type=Path, help="the folder of saved API answers (*.json)")
        vendor_parser.add_argument("--users", type=Path, metavar="FILE",
                                   help="users.csv: email,slack_id[,name]")
        vendor_parser.add_argument("--out", type=Path, default=Path(), metavar="DIR",
                                   help="where the fragment and the report are written (default: here)")
        vendor_parser.set_defaults(run=cmd_import, vendor=vendor)

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


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    people = People(read_users(args.users) if args.users else {}, _lookup(settings))
    convert = pagerduty.convert if args.vendor == "pagerduty" else grafana.convert
    fragment = convert(args.dir, people, now=datetime.now(UTC))
    problems, collisions = check(settings.config, fragment.policy())
    for name in collisions:
        fragment.note(f"Names {settings.config.name} has already",
                      f"{name}: the fragment's replaces yours when pasted; rename one of them")
    args.out.mkdir(parents=True, exist_ok=True)
    policy_file, report_file = args.out / f"{args.vendor}-policy.yml", args.out / f"{args.vendor}-report.md"
    write_file(policy_file, fragment_yaml(fragment, args.dir, datetime.now(UTC)).encode())
    write_file(report_file, report_markdown(fragment, people).encode())
    counts = (f"{len(fragment.oncall)} on-call teams, {len(fragment.escalation)} chains, "
              f"{len(fragment.integrations)} integrations, {len(fragment.routing)} routes")
    notes = sum(len(n) for n in fragment.report.values()) + len(people.unmapped)
    print(f"{policy_file}: {counts}\n{report_file}: {notes} things to review")
    if problems:
        print(f"opsloop: pasted into {settings.config}, the fragment does not validate:\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return CHECK_FAILED
    print(f"pasted into {settings.config}, the fragment validates; nothing was applied")
    return OK


def _lookup(settings: Settings) -> LookupEmail | None:
    """Slack's users.lookupByEmail when a bot token is set: it maps emails users.csv does not."""
    if settings.slack_bot_token is None:
        return None
    return SlackDirectory(web_client(settings.slack_bot_token.get_secret_value(),
                                     settings.slack_api_url)).user_by_email


def cmd_oncall_refresh(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_feeds=False)  # this command is how a feed that fails gets fixed
    feeds = services.oncall.feeds
    unknown = [t for t in args.teams if t not in feeds.teams]
    if unknown:
        raise UsageError(f"not an iCal-fed on-call team: {', '.join(unknown)} "
                         f"(feeds: {', '.join(feeds.teams) or 'none; add oncall.TEAM.ical to the policy'})")
    users = read_users(args.users) if args.users else {}
    lookup = _lookup(settings)
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
