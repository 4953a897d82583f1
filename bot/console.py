"""`opsloop shell`: type what you would type in Slack, see what the bot would say.

Channel messages are printed as they would appear (with their buttons,
numbered so `press N` can click them); `as USER` switches who is typing.
"""

from __future__ import annotations

import html
import logging
import re
import shlex
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.jobs import polling_jobs
from bot.senders.file import FileSender
from opsloop.durations import parse_duration
from opsloop.errors import InvalidInput, OpsloopError, UsageError
from opsloop.incident_channels import CREATE_CHANNEL, DedicatedChannels
from opsloop.intake.payloads import parse_v2
from opsloop.messages import FILE, Button, File, Message, Reply
from opsloop.models import OutboxMessage
from opsloop.oncall import parse_moment
from opsloop.outbox import CHAT, Delivered, Dispatcher
from opsloop.present.reviews import DOC as REVIEW_DOC
from opsloop.timers.models import Timer
from opsloop.types import is_system

log = logging.getLogger(__name__)

SHELL_HELP = """\
Type slash commands as in Slack, e.g. /incident declare "Checkout API returns 500" sev1 tenant:acme
  press N        press button N of a message above
  as USER        act as another user (e.g. as U0SRE1); whoami shows who you are
  tick DURATION  move the console's clock forward (e.g. tick 5m), firing what comes due on the way
  at TIME        move it to a time (18:00, mon 09:00, 2026-11-30 09:00, +2h; never back)
  now            print the console's time
  alert "summary" [critical|error|warning|info] [name=value ...] [dedup_key=KEY]
                 a firing alert, as a monitor would send it (Events API v2); alert resolve KEY resolves it
  help           this help, then every command's help
  quit           leave (or Ctrl-D)"""

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([^>|]+)(?:\|[^>]*)?>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>")


def plain(text: str, channels: dict[str, str] | None = None) -> str:
    """Slack markup to terminal text: mentions as @U1, channels as #name, entities decoded."""
    text = _LINK.sub(r"\2 (\1)", text)
    text = _CHANNEL.sub(lambda m: f"#{(channels or {}).get(m.group(1), m.group(1))}", text)
    return html.unescape(_GROUP.sub(r"@\1", _MENTION.sub(r"@\1", text)))


class ConsoleChat:
    """The chat transport of the console: prints what Slack would show, numbers the buttons.

    A dedicated incident channel is "created" by name (the console has no Slack to ask), so
    the console shows the same flow as Slack: the card and its thread in `#inc-7-...`."""

    def __init__(self, out: TextIO, channel_names: dict[str, str], channels: DedicatedChannels) -> None:
        self.out = out
        self.names = channel_names
        self.channels = channels
        self.buttons: dict[int, Button] = {}
        self._posted = 0

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        if message.payload.get("op") == CREATE_CHANNEL:
            return self._create_channel(message.payload)
        target = self.channels.resolve(message.target) or message.target
        where = f"#{self.names.get(target, target)}"
        if message.payload.get("op") == REVIEW_DOC:  # the document is `opsloop review INC-n`: say it is there
            lines = str(message.payload["markdown"]).count("\n") + 1
            print(f"{where} | {message.payload['line']} ({message.payload['filename']}, {lines} lines; "
                  f"`opsloop review` prints it)", file=self.out)
            return Delivered(external_id=f"console.review.{message.id}", external_target=message.target)
        if message.payload.get("op") == FILE:  # a terminal cannot show a chart: say what it is
            file = File.from_payload(message.payload)
            thread = f" ↳ thread of {parent.key}" if parent is not None else ""
            print(f"{where}{thread} | 📎 {file.title} ({file.filename}, {len(file.content):,} bytes)",
                  file=self.out)
            return Delivered(external_id=f"console.file.{message.id}", external_target=message.target)
        body = Message.from_json(message.payload["message"])
        if message.update_key is not None:
            prefix = f"{where} (updated)"
        elif message.thread_key is not None and parent is not None:
            prefix = f"{where} ↳ thread of {parent.key.removeprefix('card:')}"
        else:
            prefix = where
        self.show(prefix, body)
        self._posted += 1
        return Delivered(external_id=f"console.{self._posted}", external_target=target)

    def _create_channel(self, op: dict[str, object]) -> Delivered:
        ref, name = str(op["ref"]), str(op["name"])
        channel = self.channels.channel_of(ref) or name
        self.channels.created(ref, channel)
        invited = ", ".join(f"@{u}" for u in op.get("invite") or [])  # type: ignore[attr-defined]
        print(f"#{channel} | (created for {ref}; invited {invited or 'nobody'})", file=self.out)
        return Delivered(external_id=channel, external_target=channel)

    def show(self, prefix: str, body: Message) -> None:
        lines = [plain(body.text, self.names)]
        if body.fields:
            lines.append(" · ".join(f"{k}: {plain(v, self.names)}" for k, v in body.fields))
        if body.body:
            lines.append(plain(body.body, self.names))
        if body.buttons:
            lines.append(" ".join(self._number(b) for b in body.buttons))
        if body.context:
            lines.append(plain(body.context, self.names))
        rows = [row for line in lines for row in line.split("\n")]  # a body may span lines
        print(f"{prefix} | " + f"\n{' ' * len(prefix)} | ".join(rows), file=self.out)

    def _number(self, button: Button) -> str:
        if button.url is not None:  # nothing to press in a terminal: show where it leads
            return f"[{button.label} ↗ {button.url}]"
        number = len(self.buttons) + 1
        self.buttons[number] = button
        return f"[{number}: {button.label}]"


class ConsoleOutbound:
    """Email and webhooks in the console: printed, not sent."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        if message.transport == "email":
            print(f"✉ email to {message.target} | {message.payload['subject']}", file=self.out)
        else:
            print(f"↗ webhook {message.target} | {message.payload['json'].get('subject', '')}",
                  file=self.out)
        return Delivered()


class MovableClock(Protocol):
    def now(self) -> datetime: ...

    def move_to(self, moment: datetime) -> None: ...


_ALERT_SEVERITIES = ("critical", "error", "warning", "info")
_MAX_STEPS = 10_000  # timer moments visited by one tick, so a runaway schedule cannot hang it


class Console:
    def __init__(self, services: Services, *, user: str, out: TextIO | None = None,
                 clock: MovableClock | None = None) -> None:
        self.services = services
        self.user = user
        self.out = out or sys.stdout  # looked up now: stdout may have been replaced since import
        self.clock = clock  # the services' own clock, when the console may move it
        self.jobs = polling_jobs(services)
        names = {cid: name for name, cid in services.policy.channels.items()}
        self.chat = ConsoleChat(self.out, names, services.channels)
        outbound = ConsoleOutbound(self.out)
        self.dispatcher = Dispatcher(services.db, {CHAT: self.chat, "email": outbound,
                                                   "webhook": outbound, "file": FileSender()}, services.clock,
                                     prepare=services.cards.prepare_outbound)

    def run(self, lines: Iterable[str], *, interactive: bool = False) -> None:
        if interactive:
            roles = ", ".join(self.services.authz.roles_of(self.user)) or "no roles"
            self._say(f"opsloop shell — you are {self.user} ({roles}). Type help, or quit.")
        self.services.heartbeats.arm()  # as the servers do at start
        self.services.schedules.arm()
        self.services.sweeper.run_safely()  # timers that came due while nobody was listening
        self.dispatcher.drain()  # anything queued while nobody was listening
        for line in lines:
            if line.strip() in ("quit", "exit"):
                break
            self.execute(line)

    def execute(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("#"):
            return
        try:
            reply = self._dispatch(line)
        except OpsloopError as error:
            reply = Reply(f"✗ {error}")
        except Exception:  # never a traceback in the user's face
            log.exception("console command failed: %s", line)
            reply = Reply("✗ internal error (details in the log); nothing was changed")
        if reply is not None:
            self._reply(reply)
        self._settle()

    def _settle(self) -> None:
        """What the servers' background jobs do, done now: the console has no scheduler."""
        for job in self.jobs:  # clocks move, approved http steps and rollouts run, loops report
            job.run()
        self.dispatcher.drain()

    def _dispatch(self, line: str) -> Reply | None:
        word, _, rest = line.partition(" ")
        if word.startswith("/"):
            return self.services.commands.handle(word, rest, actor=self.user)
        if word == "help":
            return Reply(f"{SHELL_HELP}\n\n{self.services.commands.help()}")
        if word == "as":
            if not rest.strip():
                raise UsageError("usage: as USER")
            if is_system(rest.strip()):
                raise UsageError("system actors are integrations, not people; pick a user id")
            self.user = rest.strip().lstrip("@")
            roles = ", ".join(self.services.authz.roles_of(self.user)) or "no roles"
            return Reply(f"You are now {self.user} ({roles}).")
        if word == "whoami":
            roles = ", ".join(self.services.authz.roles_of(self.user)) or "no roles"
            return Reply(f"{self.user} ({roles})")
        if word == "press":
            number = rest.strip()
            if not number.isdigit() or int(number) not in self.chat.buttons:
                raise UsageError("usage: press N, with N a button number shown above")
            button = self.chat.buttons[int(number)]
            return self.services.commands.press(button.action, button.value, actor=self.user)
        if word in ("tick", "at", "now"):
            return self._travel(word, rest.strip())
        if word == "alert":
            return self._alert(rest)
        raise UsageError(f"unknown input {word!r}: type a slash command, press N, as USER or help")

    # ------------------------------------------------------------------ the console's clock

    def _travel(self, word: str, text: str) -> Reply:
        zone = ZoneInfo(self.services.policy.timezone)
        if word == "now":
            return Reply(f"It is {self.services.clock.now().astimezone(zone):%a %d %b %Y %H:%M} "
                         f"({zone.key}).")
        if self.clock is None:
            raise UsageError("this console runs on the system clock; `opsloop shell` can move its own")
        if not text:
            raise UsageError("usage: tick DURATION (e.g. tick 5m) or at TIME (e.g. at 18:00)")
        now = self.clock.now()
        try:
            target = now + parse_duration(text) if word == "tick" else parse_moment(text, now, zone)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        if target < now:
            raise InvalidInput(f"{text!r} is in the past: the console's clock only moves forward")
        self._advance(target)
        return Reply(f"It is {target.astimezone(zone):%a %d %b %Y %H:%M} ({zone.key}).")

    def _advance(self, target: datetime) -> None:
        """Visit each moment a timer comes due on the way to `target`, in order, so warnings,
        breaches and pages happen at their own times and each is printed as it would be."""
        assert self.clock is not None
        for _ in range(_MAX_STEPS):
            due = self._next_due()
            now = self.clock.now()
            step = target if due is None or due > target or due <= now else due
            self.clock.move_to(step)
            self._settle()
            if step >= target:
                return
        self.clock.move_to(target)
        self._settle()

    def _next_due(self) -> datetime | None:
        with self.services.db.transaction() as session:
            due = session.exec(select(func.min(Timer.due_at)).where(col(Timer.fired_at).is_(None))).one()
        return due if due is None or due.tzinfo else due.replace(tzinfo=self.services.clock.now().tzinfo)

    # ------------------------------------------------------------------ alerts, as a monitor sends them

    def _alert(self, text: str) -> Reply:
        integration = next((i.name for i in self.services.policy.integrations if i.kind == "events_v2"), None)
        if integration is None:
            raise UsageError("the policy names no integration of kind events_v2 to send alerts through")
        try:
            words = shlex.split(text)
        except ValueError as error:
            raise UsageError(f"cannot read the alert: {error}") from None
        event: dict[str, Any]
        if len(words) == 2 and words[0] == "resolve":
            event = {"routing_key": "console", "event_action": "resolve", "dedup_key": words[1]}
        else:
            details = dict(w.split("=", 1) for w in words if "=" in w)
            severity = next((w for w in words if w in _ALERT_SEVERITIES), "critical")
            summary = " ".join(w for w in words if "=" not in w and w not in _ALERT_SEVERITIES)
            if not summary:
                raise UsageError('usage: alert "summary" [critical|error|warning|info] [name=value ...] '
                                 "[dedup_key=KEY], or alert resolve KEY")
            key = details.pop("dedup_key", None) or re.sub(r"[^a-z0-9]+", "-", summary.lower()).strip("-")
            event = {"routing_key": "console", "event_action": "trigger", "dedup_key": key,
                     "payload": {"summary": summary, "source": "console", "severity": severity,
                                 "custom_details": details}}
        [outcome] = self.services.intake.ingest([(integration, parse_v2(event))])
        opened = ", ".join(outcome.created) or "no new incident"
        touched = ", ".join(outcome.touched)
        return Reply(f"alert {outcome.dedup_key} ({event['event_action']}) via {integration}: {opened}"
                     + (f"; touched {touched}" if touched and not outcome.created else ""))

    def _reply(self, reply: Reply) -> None:
        if reply.form is not None:
            self._say(f"usage: {reply.form.usage} (in Slack, this opens a form)")
            return
        self._say(plain(reply.text, self.chat.names))
        if reply.message is not None:
            self.chat.show("  ", reply.message)

    def _say(self, text: str) -> None:
        print(text, file=self.out)
