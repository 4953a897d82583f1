"""/incident, /escalate and /exception: one grammar over the one lifecycle engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opsloop.commands.parse import is_ref, mention, sort_words, tokens
from opsloop.durations import format_duration, parse_duration
from opsloop.errors import UsageError
from opsloop.exception_approvals import time_left
from opsloop.messages import Form, FormField, Message, Reply, escape, user
from opsloop.present.items import Cards
from opsloop.types import Kind, Severity
from opsloop.workitems import ItemView, WorkItems

INCIDENT_HELP = """\
*/incident* — declare and drive incidents
• `/incident declare "title" [sev1..sev4] [tenant:ID ...] [runbook:ID]` — declare (sev3 if not given)
• `/incident ack|mitigate|resolve|close|reopen INC-n [note]` — move it along
• `/incident assign INC-n @user` · `/incident comms INC-n @user` — owner, comms owner
• `/incident tenants INC-n add ID [ID ...]` — name more affected accounts
• `/incident update INC-n "what changed"` — a status update (meets the update target)
• `/incident pause INC-n [reason]` · `/incident resume INC-n` — stop and restart its SLA clocks
• `/incident status INC-n` · `/incident list [all]` · `/incident help`"""

ESCALATE_HELP = """\
*/escalate* — raise a customer escalation
• `/escalate "what the customer hit" tenant:ID [sev1..sev4]` — open one (sev3 if not given)
• `/escalate ack|mitigate|resolve|close|reopen ESC-n [note]` · `/escalate assign ESC-n @user`
• `/escalate update ESC-n "what changed"` · `/escalate pause ESC-n [reason]` · `/escalate resume ESC-n`
• `/escalate status ESC-n` · `/escalate list [all]` · `/escalate help`"""

EXCEPTION_HELP = """\
*/exception* — ask to step off the standard path, for a while
• `/exception "what and why" [expires:4h] [tenant:ID ...]` — request one (approvers decide)
• `/exception approve|reject EXC-n [reason]` · `/exception end EXC-n` — decide, end early
• `/exception status EXC-n` · `/exception list [all]` · `/exception help`"""

DECLARE_USAGE = '/incident declare "title" [sev1..sev4] [tenant:ID ...]'
DECLARE_FORM = Form(
    id="incident.declare",
    title="Declare an incident",
    submit_label="Declare",
    usage=DECLARE_USAGE,
    fields=[
        FormField("title", "What is broken?", placeholder="Checkout API returns 500"),
        FormField("severity", "Severity", options=[s.value for s in Severity], initial="sev3"),
        FormField("tenants", "Affected tenants (ids, space-separated)", optional=True,
                  placeholder="acme globex"),
    ],
)

_VERBS = {
    "ack": "acknowledge", "acknowledge": "acknowledge", "mitigate": "mitigate",
    "mitigated": "mitigate", "resolve": "resolve", "close": "close", "reopen": "reopen",
    "approve": "approve", "reject": "reject", "end": "expire", "expire": "expire",
}
_DONE = {
    "acknowledge": "acknowledged", "mitigate": "marked mitigated", "resolve": "resolved",
    "close": "closed", "reopen": "reopened", "approve": "approved", "reject": "rejected",
    "expire": "ended",
}


# more verbs on a work item, registered by other features: (kind, ref, words after it, actor)
ExtraVerb = Callable[[Kind, str, list[str], str], Reply]


class WorkItemCommands:
    def __init__(self, items: WorkItems, cards: Cards, verbs: dict[str, ExtraVerb]) -> None:
        self.items = items
        self.cards = cards
        self.verbs = verbs  # more verbs on an item, from other capabilities (pause, resume, update)

    # ------------------------------------------------------------------ the three commands

    def incident(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        verb = words[0].lower() if words else "help"
        if verb == "declare":
            return self._declare(words[1:], actor)
        return self._common(Kind.INCIDENT, verb, words[1:], actor, INCIDENT_HELP)

    def escalate(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        verb = words[0].lower() if words else "help"
        if verb in _VERBS or verb in self.verbs or verb in ("status", "list", "help", "assign", "comms",
                                                              "tenants"):
            return self._common(Kind.ESCALATION, verb, words[1:], actor, ESCALATE_HELP)
        parsed = sort_words(words, options={"tenant"})
        title = " ".join(parsed.text)
        if not title:
            raise UsageError('usage: /escalate "what the customer hit" tenant:ID [sev1..sev4]')
        item = self.items.open_escalation(
            actor=actor, title=title, tenants=parsed.options.get("tenant", []),
            severity=Severity(parsed.severity) if parsed.severity else None,
        )
        return Reply(f"Opened {item.ref}: {escape(item.title)} ({item.severity})")

    def exception(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        verb = words[0].lower() if words else "help"
        if verb in _VERBS or verb in ("status", "list", "help", "assign"):
            return self._common(Kind.EXCEPTION, verb, words[1:], actor, EXCEPTION_HELP)
        parsed = sort_words(words, options={"tenant", "expires"})
        title = " ".join(parsed.text)
        if not title:
            raise UsageError('usage: /exception "what and why" [expires:4h] [tenant:ID]')
        expires = parsed.option("expires")
        try:
            expires_in = parse_duration(expires) if expires else None
        except ValueError as error:
            raise UsageError(f"expires: {error}") from None
        item = self.items.request_exception(
            actor=actor, title=title, expires_in=expires_in,
            tenants=parsed.options.get("tenant", []),
        )
        lasting = f", for {format_duration(expires_in)} once approved" if expires_in else ""
        return Reply(f"Requested {item.ref}: {escape(item.title)}{lasting}. Approvers were asked.")

    # ------------------------------------------------------------------ shared verbs

    def _declare(self, words: list[str], actor: str) -> Reply:
        if not words:
            return Reply("Declare an incident", form=DECLARE_FORM)
        parsed = sort_words(words, options={"tenant", "owner", "runbook"})
        title = " ".join(parsed.text)
        if not title:
            raise UsageError('usage: /incident declare "title" [sev1..sev4] [tenant:ID ...]')
        owner = parsed.option("owner")
        runbook = parsed.option("runbook")  # overrides routing; the runbooks hook reads the label
        item = self.items.declare(
            actor=actor, title=title,
            severity=Severity(parsed.severity) if parsed.severity else None,
            tenants=parsed.options.get("tenant", []),
            owner=mention(owner) if owner else None,
            labels={"runbook": runbook} if runbook else None,
        )
        return Reply(f"Declared {item.ref}: {escape(item.title)} ({item.severity})")

    def _common(self, kind: Kind, verb: str, args: list[str], actor: str, help_text: str) -> Reply:
        if verb == "help":
            return Reply(help_text)
        if verb == "list":
            return self._list(kind, args)
        if not args or not is_ref(args[0]):
            raise UsageError(f"usage: {verb} {kind.prefix}-n ...  (see `help`)")
        ref, rest = args[0].upper(), args[1:]
        if verb == "status":
            return self._status(*self.cards.status(ref))
        if verb == "tenants":
            if len(rest) < 2 or rest[0].lower() != "add":
                raise UsageError(f"usage: tenants {ref} add ID [ID ...]")
            item = self.items.add_tenants(actor=actor, ref=ref, tenants=rest[1:])
            return Reply(f"{item.ref}: now affects {', '.join(self.items.get(ref).tenants)}")
        if verb in ("assign", "comms"):
            who = mention(rest[0]) if rest else None
            if who is None:
                raise UsageError(f"usage: {verb} {ref} @user")
            key = "owner" if verb == "assign" else "comms_owner"
            item = self.items.assign(actor=actor, ref=ref, **{key: who})
            return Reply(f"{item.ref}: {'owner' if verb == 'assign' else 'comms owner'} is now {user(who)}")
        if verb in self.verbs and kind is not Kind.EXCEPTION:
            return self.verbs[verb](kind, ref, rest, actor)
        action = _VERBS.get(verb)
        if action is None:
            raise UsageError(f"unknown subcommand {verb!r}\n{help_text}")
        note = " ".join(rest) or None
        item = self.items.act(actor=actor, ref=ref, action=action, note=note)
        return Reply(f"{item.ref} {_DONE[action]} — now {item.state}")

    def submit_declare(self, values: dict[str, str], actor: str) -> Reply:
        """The declare form, filled in."""
        severity = values.get("severity") or "sev3"
        if severity not in {s.value for s in Severity}:
            raise UsageError(f"severity: {severity!r} is not one of sev1 .. sev4")
        item = self.items.declare(
            actor=actor, title=values.get("title", ""), severity=Severity(severity),
            tenants=(values.get("tenants") or "").replace(",", " ").split(),
        )
        return Reply(f"Declared {item.ref}: {escape(item.title)} ({item.severity})")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """A work item button: `acknowledge` on `INC-1` ..."""
        if not is_ref(value):
            raise UsageError(f"this button carries no work item ({value!r})")
        item = self.items.act(actor=actor, ref=value, action=verb)
        return Reply(f"{item.ref} {_DONE.get(verb, verb)} — now {item.state}")

    # ------------------------------------------------------------------ rendering

    def _list(self, kind: Kind, args: list[str]) -> Reply:
        show_all = bool(args) and args[0].lower() == "all"
        views = self.items.list_items(kind=kind, open_only=not show_all)
        if not views:
            return Reply(f"No {'' if show_all else 'open '}{kind.value}s.")
        lines = [f"*{'All' if show_all else 'Open'} {kind.value}s*"]
        for view in views:
            i = view.item
            tenants = f" · {', '.join(view.tenants)}" if view.tenants else ""
            left = time_left(i, self.items.clock.now()) if i.state == "approved" else None
            ends = f" · {left}" if left else ""
            lines.append(f"• {i.ref} [{i.severity}] {escape(i.title)} — {i.state}{ends}{tenants}")
        return Reply("\n".join(lines))

    def _status(self, view: ItemView, card: Message, open_loops: list[str]) -> Reply:
        i = view.item
        stamps = [("declared" if i.kind == "incident" else "opened", i.created_at)]
        for label, when in (("acknowledged", i.acknowledged_at), ("mitigated", i.mitigated_at),
                            ("resolved", i.resolved_at), ("closed", i.closed_at),
                            ("decided", i.decided_at), ("expired", i.expired_at)):
            if when is not None:
                stamps.append((label, when))
        clock = " · ".join(
            f"{label} {_stamp(when)}" + (f" (+{format_duration(when - i.created_at)})" if n else "")
            for n, (label, when) in enumerate(stamps)
        )
        timeline = "\n".join(f"  {e.at:%H:%M} {e.text}" for e in view.timeline)
        loops = "".join(f"\n  {line}" for line in open_loops)
        loops = f"\n*Open feedback loops*{loops}" if loops else ""
        return Reply(f"{clock}\n*Timeline*\n{timeline}{loops}", message=card)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")
