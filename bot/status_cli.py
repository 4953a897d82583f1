"""`opsloop status link TENANT` prints a tenant's status page link; `opsloop status revoke TENANT` ends it.

    $ opsloop status link acme
    https://status.example.com/status/t/Zm9v...Xw.kq3...
    $ opsloop status revoke acme
    revoked acme's status link; `opsloop status link acme` makes a new one

Both are audited as the command line (`system:cli`). An unknown tenant exits 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop.status.links import DEFAULT_BASE

OK = 0
CLI_ACTOR = "system:cli"


def register(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="tenants' status pages")
    status_sub = status.add_subparsers(dest="status_command", required=True, parser_class=parser_class)
    link = status_sub.add_parser("link", help="print the tenant's status page link (a full URL)")
    link.add_argument("tenant", metavar="TENANT", help="the account id")
    link.set_defaults(run=cmd_link)
    revoke = status_sub.add_parser("revoke", help="end the tenant's status page link (it then answers 404)")
    revoke.add_argument("tenant", metavar="TENANT", help="the account id")
    revoke.set_defaults(run=cmd_revoke)


def cmd_link(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_feeds=False)
    token = services.status_links.link(args.tenant, actor=CLI_ACTOR)
    if services.policy.status.base_url is None:
        print(f"opsloop: status.base_url is not set in the policy, so the link starts with {DEFAULT_BASE} "
              "(opsloop serve's default address); set it to the public address of opsloop serve",
              file=sys.stderr)
    print(services.status_links.url(token))
    return OK


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_feeds=False)
    ended = services.status_links.revoke(args.tenant, actor=CLI_ACTOR)
    if ended:
        print(f"revoked {args.tenant}'s status link; `opsloop status link {args.tenant}` makes a new one")
    else:
        print(f"{args.tenant} had no status link; nothing changed")
    return OK
