"""The commands for switching from PagerDuty or Grafana OnCall: `opsloop history import FILE`.

(`opsloop import pagerduty|oncall DIR` and `opsloop oncall refresh` join them here.)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.bootstrap import bootstrap
from bot.settings import Settings
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
