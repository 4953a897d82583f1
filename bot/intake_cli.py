"""`opsloop intake inbox` shows what the webhook intake accepted and could not process;
`opsloop intake retry ID ... | --all` puts such entries back in line.

    $ opsloop intake inbox
    waiting: 0; set aside: 1
    #17  prometheus (alertmanager)  accepted 2026-11-26 09:14:03Z, set aside 09:14:03Z
         PayloadError: alerts: Input should be a valid list
    $ opsloop intake retry 17
    put back in line: #17 (the inbox worker of opsloop serve takes it next)

A retried entry is processed like any other, before the ones accepted after it
that are still waiting; its alerts say what they said when it was accepted.
Retrying is audited as the command line (`system:cli`). An id that is not set
aside exits 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop.intake.inbox import Inbox, inbox_depth

OK, USAGE = 0, 2
CLI_ACTOR = "system:cli"


def register(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    intake = sub.add_parser("intake", help="the webhook intake's inbox")
    intake_sub = intake.add_subparsers(dest="intake_command", required=True, parser_class=parser_class)
    intake_sub.add_parser("inbox", help="what waits to be processed, and what was set aside with its error") \
        .set_defaults(run=cmd_inbox)
    retry = intake_sub.add_parser("retry", help="put set-aside webhooks back in line (audited); they are "
                                  "processed before newer waiting ones, with the alerts they carried then")
    retry.add_argument("ids", metavar="ID", type=int, nargs="*", help="an entry's number (see inbox)")
    retry.add_argument("--all", action="store_true", help="every set-aside entry")
    retry.set_defaults(run=cmd_retry)


def _inbox(settings: Settings) -> Inbox:
    services = bootstrap(settings, load_feeds=False)
    return Inbox(services.db, services.intake, services.clock)


def cmd_inbox(args: argparse.Namespace, settings: Settings) -> int:
    inbox = _inbox(settings)
    with inbox.db.snapshot() as session:
        waiting, aside = inbox_depth(session)
    print(f"waiting: {waiting}; set aside: {aside}")
    for entry in inbox.set_aside():
        assert entry.failed_at is not None
        print(f"#{entry.id}  {entry.integration} ({entry.kind})  accepted "
              f"{entry.received_at:%Y-%m-%d %H:%M:%S}Z, set aside {entry.failed_at:%Y-%m-%d %H:%M:%S}Z")
        print(f"     {(entry.error or '').splitlines()[0] if entry.error else '(no error recorded)'}")
    return OK


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.ids) == args.all:
        print("opsloop: name the entries to retry (opsloop intake retry ID ...) or --all, not both",
              file=sys.stderr)
        return USAGE
    inbox = _inbox(settings)
    wanted = None if args.all else list(dict.fromkeys(args.ids))
    if wanted is not None:
        known = {entry.id for entry in inbox.set_aside()}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            print(f"opsloop: not set aside: {', '.join(f'#{i}' for i in unknown)} "
                  "(see `opsloop intake inbox`); nothing changed", file=sys.stderr)
            return USAGE
    back = inbox.retry(wanted, actor=CLI_ACTOR)
    if back:
        print(f"put back in line: {', '.join(f'#{i}' for i in back)} "
              "(the inbox worker of opsloop serve takes them next)")
    else:
        print("nothing was set aside; nothing changed")
    return OK
