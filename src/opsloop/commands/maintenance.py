"""/maintenance: schedule planned work that pages no one, list it, see it, end it early."""

from __future__ import annotations

import re
from datetime import datetime

from opsloop.commands.args import MAINTENANCE_ID, TENANT, Choice, Words
from opsloop.commands.grammar import Anywhere, Args, Command, Context, Keyword, Opt, Pos, Rest, Run, Verb
from opsloop.commands.workitems import status_reply
from opsloop.errors import InvalidInput, UsageError
from opsloop.listing import ItemQuery
from opsloop.maintenance.matchers import parse_matcher
from opsloop.maintenance.service import Maintenance, Outcome
from opsloop.messages import Reply, escape
from opsloop.present.items import Cards
from opsloop.types import Kind
from opsloop.workitems import WorkItems

TIME = Words("TIME", "a time (now, +2h, 18:00, mon 09:00 or 2026-11-23 18:00)")
_LIST = Choice(("open", "all"), "a list (open or all)")
_DONE = {"approve": "approved", "reject": "rejected", "end": "ended"}


class MatcherType:
    """An Alertmanager matcher: `label=value`, `label!=value`, `label=~regex`, `label!~regex`."""

    label = "MATCHER ..."
    noun = "a matcher (service=checkout, env=~\"prod|staging\", team!=web)"

    def claims(self, token: str) -> bool:
        return re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*(=~|!~|!=|=)", token) is not None

    def read(self, token: str, ctx: Context) -> str:
        try:
            parse_matcher(token)  # refused here, with the usage line; the service reads it again
            return token
        except InvalidInput as error:
            raise UsageError(str(error)) from None


MATCHER = MatcherType()


class MaintenanceCommands:
    def __init__(self, maintenance: Maintenance, items: WorkItems, cards: Cards) -> None:
        self.maintenance = maintenance
        self.items = items
        self.cards = cards

    def command(self) -> Command:
        ref = Pos("ref", MAINTENANCE_ID)
        return Command("/maintenance", "planned work that pages no one", [
            Verb("schedule", "a window: matching alerts open nothing and page no one until it ends",
                 Rest("what", required=True, quoted=True, label="what is planned"),
                 Anywhere("matchers", MATCHER, many=True), Keyword("from", TIME, optional=True),
                 Keyword("until", TIME), Opt("tenant", TENANT, many=True), run=self._schedule),
            Verb("list", "open windows (or all)", Anywhere("which", _LIST), run=self._list),
            Verb("status", "its timeline and card", ref, run=self._status),
            Verb("end", "end it now (what it held and still fires opens incidents)", ref, Rest("reason"),
                 run=self._act("end")),
            Verb("approve", "approve a window waiting for approval (never your own)", ref, Rest("reason"),
                 run=self._act("approve")),
            Verb("reject", "reject a window waiting for approval", ref, Rest("reason"),
                 run=self._act("reject")),
        ], footer="Matchers as Alertmanager's: `label=value`, `!=`, `=~` and `!~` (anchored regular "
                  "expressions). Times: `now`, `+2h`, `18:00`, `mon 09:00`, `2026-11-23 18:00` (the policy's "
                  "time zone); a relative `until` counts from the start.")

    # ------------------------------------------------------------------ verbs

    def _schedule(self, args: Args) -> Reply:
        if not args["matchers"]:
            raise UsageError('/maintenance schedule: name the alerts it covers with matchers, e.g. '
                             '`/maintenance schedule "DB upgrade" service=db from now until +2h`')
        outcome = self.maintenance.schedule(actor=args.actor, what=args["what"], matchers=args["matchers"],
                                            starts=args["from"], until=args["until"], tenants=args["tenant"])
        item, window = outcome.item, outcome.window
        waits = (f" It waits for approval (`/maintenance approve {item.ref}`)."
                 if item.state == "requested" else "")
        starts = self.maintenance.local(window.starts_at)
        text = (f"Scheduled {item.ref}: {escape(item.title)} — from {starts} "
                f"until {self.maintenance.local(window.ends_at)}, covering "
                f"{escape(item.labels.get('matchers', ''))}; now {item.state}.{waits}")
        return Reply(text + _silences(outcome))

    def _act(self, action: str) -> Run:
        def run(args: Args) -> Reply:
            verb = getattr(self.maintenance, action)
            outcome: Outcome = verb(actor=args.actor, ref=args["ref"], note=args["reason"])
            said = f"{outcome.item.ref} {_DONE[action]} — now {outcome.item.state}"
            return Reply(said + _silences(outcome))
        return run

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The card's buttons: approve, reject, end."""
        if verb not in _DONE:
            raise UsageError(f"unknown button maintenance.{verb}")
        outcome: Outcome = getattr(self.maintenance, verb)(actor=actor, ref=value)
        said = f"{outcome.item.ref} {_DONE[verb]} — now {outcome.item.state}"
        return Reply(said + _silences(outcome))

    def _list(self, args: Args) -> Reply:
        show_all = args["which"] == "all"
        page = self.items.search(ItemQuery(kind=Kind.MAINTENANCE, which="all" if show_all else "open"))
        views = page.items
        if not views:
            return Reply(f"No {'' if show_all else 'open '}maintenance windows.")
        lines = [f"*{'All' if show_all else 'Open'} maintenance windows*"]
        for view in views:
            i = view.item
            tenants = f" · {', '.join(view.tenants)}" if view.tenants else ""
            span = _span(self.maintenance, i.labels)
            lines.append(f"• {i.ref} {escape(i.title)} — {i.state} · {span} · "
                         f"{escape(i.labels.get('matchers', ''))}{tenants}")
        if page.more:  # nothing is cut silently
            lines.append(f"Showing the newest {page.last} of {page.total}.")
        return Reply("\n".join(lines))

    def _status(self, args: Args) -> Reply:
        view, card, open_loops = self.cards.status(args["ref"])
        return status_reply(view, card, open_loops)


def _span(maintenance: Maintenance, labels: dict[str, str]) -> str:
    starts, ends = (datetime.fromisoformat(labels[k]) for k in ("starts_at", "ends_at"))
    return f"{maintenance.local(starts)} → {maintenance.local(ends)}"


def _silences(outcome: Outcome) -> str:
    said = ""
    if outcome.mirrored:
        said += f" Mirrored as a silence in {', '.join(outcome.mirrored)}."
    if outcome.problems:
        said += f" ⚠️ Alertmanager silence: {'; '.join(outcome.problems)} (opsloop holds the alerts anyway)."
    return said
