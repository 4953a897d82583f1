"""The `opsloop` command line (SPEC: Command line).

Exit status: 0 success, 1 a check failed, 2 bad usage or bad input (with a
one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot import audit_cli, intake_cli, playbooks_cli, review_cli, runbooks_cli, status_cli, switch_cli
from bot.bootstrap import Services, bootstrap, record_started
from bot.files import write_file
from bot.settings import Settings
from opsloop.accounts import import_catalog
from opsloop.clock import ShiftedClock
from opsloop.db import Database
from opsloop.digest.chart import drawn_apart
from opsloop.errors import ConfigError, OpsloopError
from opsloop.health import outcomes, present
from opsloop.health.calibrate import NotEnoughData
from opsloop.outbox import Dispatcher
from opsloop.present import digest as digest_words
from opsloop.types import OPSLOOP

OK, CHECK_FAILED, BAD_INPUT = 0, 1, 2
CLI_ACTOR = "system:cli"  # `system:` actors are authorised by how they got in (here: a shell)

Command = Callable[[argparse.Namespace, Settings], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(BAD_INPUT, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsloop", description="Slack-native operations bot.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    shell = sub.add_parser("shell", help="local console: type what you would type in Slack")
    shell.add_argument("--as", dest="user", default="console", help="act as this user id")
    shell.set_defaults(run=cmd_shell)

    serve = sub.add_parser("serve", help="HTTP mode: Slack's Request URL, health, readiness, metrics")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000; 0: any)")
    serve.add_argument("--ssl-certfile", type=Path, metavar="FILE",
                       help="serve HTTPS with this certificate (PEM; the chain after the certificate)")
    serve.add_argument("--ssl-keyfile", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    serve.set_defaults(run=cmd_serve)
    sub.add_parser("socket", help="Slack Socket Mode (needs SLACK_APP_TOKEN)").set_defaults(run=cmd_socket)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(run=cmd_db_upgrade)

    audit_cli.register(sub, _Parser)
    review_cli.register(sub, _Parser)

    accounts = sub.add_parser("accounts", help="the account catalog")
    acc_sub = accounts.add_subparsers(dest="accounts_command", required=True, parser_class=_Parser)
    imp = acc_sub.add_parser("import", help="create or update accounts from CSV or YAML")
    imp.add_argument("file", type=Path)
    imp.set_defaults(run=cmd_accounts_import)
    outcomes = acc_sub.add_parser("outcomes", help="record renewal outcomes from CSV "
                                                   "(tenant,date,outcome,arr_after); all or nothing")
    outcomes.add_argument("file", type=Path)
    outcomes.set_defaults(run=cmd_accounts_outcomes)

    digest = sub.add_parser("digest", help="build the leadership digest now")
    digest.add_argument("--print", dest="print_only", action="store_true",
                        help="print it as text instead of posting it to the digest channel")
    digest.add_argument("--date", type=_day,
                        help="with --print: the digest of this past local day (YYYY-MM-DD)")
    digest.add_argument("--chart", type=Path, metavar="FILE", help="with --print: write the chart (PNG) here")
    digest.set_defaults(run=cmd_digest)

    health = sub.add_parser("health", help="is the health score any good? (changes nothing)")
    health_sub = health.add_subparsers(dest="health_command", required=True, parser_class=_Parser)
    health_sub.add_parser("report", help="retention, the score's AUC against outcomes, playbooks") \
        .set_defaults(run=cmd_health_report)
    calibrate = health_sub.add_parser("calibrate", help="propose health.weights fitted on the known outcomes")
    calibrate.add_argument("--days", type=int, choices=(30, 60, 90), default=90,
                           help="fit on the score this many days before each renewal (default 90)")
    calibrate.set_defaults(run=cmd_health_calibrate)

    runbooks_cli.register(sub, _Parser)
    playbooks_cli.register(sub, _Parser)
    switch_cli.register(sub, _Parser)
    status_cli.register(sub, _Parser)
    intake_cli.register(sub, _Parser)
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


# --------------------------------------------------------------------------- commands


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import Console

    clock = ShiftedClock()  # `tick` and `at` move it
    services = bootstrap(settings, clock=clock)
    record_started(services, mode="shell")
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401 - gives input() line editing and history

    console = Console(services, user=args.user, clock=clock)
    console.run(_lines(interactive, lambda: f"{console.user}> "), interactive=interactive)
    return OK


def _lines(interactive: bool, prompt: Callable[[], str]) -> Iterator[str]:
    if not interactive:
        return (line.rstrip("\n") for line in sys.stdin)

    def typed() -> Iterator[str]:
        while True:
            try:
                yield input(prompt())
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print()

    return typed()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The edge (this process) and the core (a process of its own, `bot.core_process`): forked
    right after the bootstrap, before any thread starts; stopped after uvicorn stopped serving."""
    import uvicorn

    from bot.core_process import ProcessCorePool
    from bot.http import create_http_app
    from bot.scheduler import SchedulerWorker
    from bot.senders import outbound_senders
    from bot.slack.wiring import wire_slack

    def core_workers(services: Services) -> Dispatcher:
        """In the core process: the outbox delivering through Slack and the other transports, and
        the scheduler."""
        dispatcher = wire_slack(services, extra_senders=outbound_senders(settings))
        services.background.append(SchedulerWorker(services))
        return dispatcher

    certfile, keyfile = _tls_files(args)
    services = bootstrap(settings)
    long_running(services)
    record_started(services, mode="serve")
    services.pool = core = ProcessCorePool(services, core_workers)
    app = create_http_app(services, settings, core=core)  # refuses without Slack's token and secret
    freeze_startup_heap()
    core.start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower(),
                    access_log=False, server_header=False, ssl_certfile=certfile, ssl_keyfile=keyfile)
    finally:
        core.stop()  # done already by the app's shutdown, unless it never started
    return OK


def _tls_files(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """uvicorn's certificate and key files, or none; both or neither, each readable (else exit 2)."""
    given = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
    if not any(given.values()):
        return None, None
    if not all(given.values()):
        raise ConfigError("serve: --ssl-certfile and --ssl-keyfile go together (HTTPS needs both)")
    for option, path in given.items():
        try:
            path.read_bytes()
        except OSError as error:
            raise ConfigError(f"serve: --{option.replace('_', '-')} {path}: {error.strerror}") from None
    return str(args.ssl_certfile), str(args.ssl_keyfile)


def long_running(services: Services) -> None:
    """What a server does differently from a one-off command: it draws the digest's chart in a child
    process, so matplotlib never settles in its heap (opsloop.digest.chart.drawn_apart)."""
    services.digests.draw = drawn_apart


def freeze_startup_heap() -> None:
    """Move everything built at start-up (modules, models, the app) out of the cyclic GC's reach.

    A full collection otherwise walks that whole heap, and the pause lands on
    whichever Slack request is waiting to be acknowledged (seen as p99 spikes
    in bench/ack_latency.py). Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def cmd_socket(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bot.scheduler import SchedulerWorker
    from bot.senders import outbound_senders
    from bot.slack.socket import run_until_signalled, socket_app
    from bot.slack.wiring import wire_slack

    services = bootstrap(settings)
    long_running(services)
    record_started(services, mode="socket")
    wire_slack(services, extra_senders=outbound_senders(settings))
    services.background.append(SchedulerWorker(services))
    socket = socket_app(services, settings)  # refuses before connecting without a token
    freeze_startup_heap()
    asyncio.run(run_until_signalled(services, socket))
    return OK


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    db = Database.from_url(settings.database_url)
    db.upgrade()
    print("database schema is current")
    return OK


def cmd_accounts_import(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_accounts=False)
    result = import_catalog(services.db, services.clock, args.file, actor=OPSLOOP)
    print(f"{args.file}: {result.created} created, {result.updated} updated, "
          f"{result.unchanged} unchanged")
    return OK


def cmd_accounts_outcomes(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings)
    result = outcomes.import_file(services.db, services.clock, args.file, zone=services.health.zone,
                                  actor=CLI_ACTOR)
    print(f"{args.file}: {result.created} recorded, {result.updated} updated, {result.unchanged} unchanged")
    return OK


def cmd_health_report(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings)
    print(present.report_text(services.health.report(actor=CLI_ACTOR)))
    return OK


def cmd_health_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings)
    try:
        found = services.health.calibrate(days=args.days)
    except NotEnoughData as error:
        print(f"opsloop: cannot propose weights: {error}", file=sys.stderr)
        return CHECK_FAILED
    print(present.calibration_text(found))
    return OK


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    if not args.print_only and (args.date or args.chart):
        print("opsloop digest: --date and --chart go with --print", file=sys.stderr)
        return BAD_INPUT
    services = bootstrap(settings)
    if args.print_only:
        digest = services.digests.build(day=args.date)
        if args.chart:
            write_file(args.chart, services.digests.chart(digest))
        print(digest_words.text(digest, chart=str(args.chart) if args.chart else None))
        return OK
    # whoever can run the command line holds the database already: posted (and audited) as the operator
    channel = services.digests.post(actor=CLI_ACTOR)
    print(f"digest queued for {channel}; the running bot (serve or socket) delivers it")
    return OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        print(f"opsloop: environment: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return BAD_INPUT
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run: Command = args.run
    try:
        return run(args, settings)
    except ConfigError as error:
        print(f"opsloop: {error}", file=sys.stderr)
        return BAD_INPUT
    except OpsloopError as error:
        print(f"opsloop: {error}", file=sys.stderr)
        return BAD_INPUT
    except SQLAlchemyError as error:  # the database is unreachable, locked or not opsloop's
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
        print(f"opsloop: the database: {type(error).__name__}: {reason}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`opsloop audit export | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


if __name__ == "__main__":
    sys.exit(main())
