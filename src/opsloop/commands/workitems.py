"""/incident, /escalate and /exception: one grammar over the one lifecycle engine."""

from __future__ import annotations

from datetime import datetime

from opsloop.commands.args import DURATION, ITEM_ID, RUNBOOK_ID, SEVERITY, TENANT, USER, Choice, Number
from opsloop.commands.grammar import Anywhere, Args, Command, Flag, Opt, Pos, Rest, Run, Verb
from opsloop.durations import format_duration
from opsloop.errors import UsageError
from opsloop.incident_roles.service import IncidentRoles
from opsloop.listing import PAGE_SIZE, WHICH, ItemQuery
from opsloop.messages import Form, FormField, Message, Reply, escape, user
from opsloop.present.items import Cards
from opsloop.present.lists import page_reply
from opsloop.types import Kind, Severity
from opsloop.workitems import ItemView, WorkItems

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

_DONE = {
    "acknowledge": "acknowledged", "mitigate": "marked mitigated", "resolve": "resolved",
    "close": "closed", "reopen": "reopened", "approve": "approved", "reject": "rejected",
    "expire": "ended",
}
_SUMMARY = {
    Kind.INCIDENT: "declare and drive incidents",
    Kind.ESCALATION: "raise and drive customer escalations",
    Kind.EXCEPTION: "ask to step off the standard path, for a while",
}
_PAGE = Number(label="N", noun="a page number")


class WorkItemCommands:
    def __init__(self, items: WorkItems, cards: Cards) -> None:
        self.items = items
        self.cards = cards
        self.roles = IncidentRoles(items)

    # ------------------------------------------------------------------ the three commands

    def command(self, kind: Kind) -> Command:
        """The command of one kind of work item, with the verbs every kind shares."""
        ref = Pos("ref", ITEM_ID[kind])
        if kind is Kind.EXCEPTION:
            return Command("/exception", _SUMMARY[kind], [
                Verb("request", "request an exception (approvers decide)",
                     Rest("title", required=True, label="what and why"), Opt("expires", DURATION),
                     Opt("tenant", TENANT, many=True), run=self._request),
                Verb("approve", "approve it (never your own)", ref, Rest("reason"), run=self._act("approve")),
                Verb("reject", "reject it", ref, Rest("reason"), run=self._act("reject")),
                Verb("end", "end an approved exception now", ref, Rest("reason"), aliases=("expire",),
                     run=self._act("expire")),
                Verb("assign", "make someone its owner", ref, Pos("user", USER), run=self._assign("owner")),
                Verb("status", "its timeline and card", ref, run=self._status),
                self._list_verb(kind),
            ], default="request", hint='To request an exception, quote what and why: '
                                        '`/exception "what and why" [expires:DURATION] [tenant:ID ...]`')
        verbs = [
            Verb("ack", "acknowledge it: you are on it", ref, Rest("note"), aliases=("acknowledge",),
                 run=self._act("acknowledge")),
            Verb("mitigate", "the impact has stopped", ref, Rest("note"), aliases=("mitigated",),
                 run=self._act("mitigate")),
            Verb("resolve", "it is fixed", ref, Rest("note"), run=self._act("resolve")),
            Verb("close", "close a resolved one (runbook steps still open: --force with the reason)", ref,
                 Flag("force"), Rest("note"), run=self._close),
            Verb("reopen", "it is back", ref, Rest("note"), run=self._act("reopen")),
            Verb("assign", "make someone its owner", ref, Pos("user", USER), run=self._assign("owner")),
            Verb("comms", "make someone its comms owner", ref, Pos("user", USER),
                 run=self._assign("comms_owner")),
            Verb("tenants", "name more affected accounts", ref, Pos("add", Choice(("add",), "add")),
                 Pos("tenants", TENANT, many=True), run=self._tenants),
            Verb("status", "its timeline, clocks and open feedback loops", ref, run=self._status),
            self._list_verb(kind),
        ]
        if kind is Kind.INCIDENT:
            names = tuple(self.roles.names)
            verbs += [
                Verb("severity", "change its severity (clocks, escalation, audiences and channel follow)",
                     ref, Pos("severity", SEVERITY), Rest("reason"), run=self._severity),
                Verb("role", f"give someone an incident role ({', '.join(names)})", ref,
                     Pos("role", Choice(names, "an incident role")), Pos("user", USER), run=self._role),
            ]
            declare = Verb("declare", "declare an incident (sev3 if not given)",
                           Rest("title", required=True), Anywhere("severity", SEVERITY),
                           Opt("tenant", TENANT, many=True), Opt("runbook", RUNBOOK_ID), Opt("owner", USER),
                           run=self._declare, bare=self._declare_form)
            return Command("/incident", _SUMMARY[kind], [declare, *verbs],
                           hint='To declare one: `/incident declare "title" [sev1..sev4]`')
        opener = Verb("open", "open an escalation (sev3 if not given)",
                      Rest("title", required=True, label="what the customer hit"),
                      Opt("tenant", TENANT, many=True), Anywhere("severity", SEVERITY), run=self._open)
        usage = opener.usage("/escalate", default=True)
        return Command("/escalate", _SUMMARY[kind], [opener, *verbs], default="open",
                       hint=f"To open an escalation, quote its title: `{usage}`")

    # ------------------------------------------------------------------ creating

    def _declare_form(self, args: Args) -> Reply:
        return Reply("Declare an incident", form=DECLARE_FORM)

    def _declare(self, args: Args) -> Reply:
        runbook = args["runbook"]  # overrides routing; the runbooks handler reads the label
        item = self.items.declare(
            actor=args.actor, title=args["title"], severity=args["severity"], tenants=args["tenant"],
            owner=args["owner"], labels={"runbook": runbook} if runbook else None,
        )
        return Reply(f"Declared {item.ref}: {escape(item.title)} ({item.severity})")

    def _open(self, args: Args) -> Reply:
        item = self.items.open_escalation(actor=args.actor, title=args["title"], tenants=args["tenant"],
                                          severity=args["severity"])
        return Reply(f"Opened {item.ref}: {escape(item.title)} ({item.severity})")

    def _request(self, args: Args) -> Reply:
        expires_in = args["expires"]
        item = self.items.request_exception(actor=args.actor, title=args["title"], expires_in=expires_in,
                                            tenants=args["tenant"])
        lasting = f", for {format_duration(expires_in)} once approved" if expires_in else ""
        return Reply(f"Requested {item.ref}: {escape(item.title)}{lasting}. Approvers were asked.")

    def submit_declare(self, values: dict[str, str], actor: str) -> Reply:
        """The declare form, filled in."""
        severity = values.get("severity") or "sev3"
        if severity not in {s.value for s in Severity}:
            raise UsageError(f"'{severity}' is not a severity: use sev1, sev2, sev3 or sev4")
        item = self.items.declare(
            actor=actor, title=values.get("title", ""), severity=Severity(severity),
            tenants=(values.get("tenants") or "").replace(",", " ").split(),
        )
        return Reply(f"Declared {item.ref}: {escape(item.title)} ({item.severity})")

    # ------------------------------------------------------------------ changing

    def _act(self, action: str) -> Run:
        def run(args: Args) -> Reply:
            note = args.get("note") or args.get("reason")
            item = self.items.act(actor=args.actor, ref=args["ref"], action=action, note=note)
            return Reply(f"{item.ref} {_DONE[action]} — now {item.state}")
        return run

    def _close(self, args: Args) -> Reply:
        if args["force"] and not args["note"]:
            raise UsageError(f'{args.command} close --force needs the reason: '
                             f'`{args.command} close {args["ref"]} --force "reason"`')
        item = self.items.act(actor=args.actor, ref=args["ref"], action="close", note=args["note"],
                              forced=args["force"])
        return Reply(f"{item.ref} closed — now {item.state}")

    def _severity(self, args: Args) -> Reply:
        before = self.items.get(args["ref"]).item.severity
        item = self.items.change_severity(actor=args.actor, ref=args["ref"], severity=args["severity"],
                                          reason=args["reason"])
        return Reply(f"{item.ref}: severity {before} → {item.severity}; its SLA targets, escalation, "
                     "audiences and channel follow")

    def _role(self, args: Args) -> Reply:
        item = self.roles.assign(actor=args.actor, ref=args["ref"], role=args["role"], who=args["user"])
        return Reply(f"{item.ref}: {args['role']} is now {user(args['user'])}")

    def _assign(self, field: str) -> Run:
        def run(args: Args) -> Reply:
            who = args["user"]
            item = self.items.assign(actor=args.actor, ref=args["ref"], **{field: who})
            return Reply(f"{item.ref}: {'owner' if field == 'owner' else 'comms owner'} is now {user(who)}")
        return run

    def _tenants(self, args: Args) -> Reply:
        item = self.items.add_tenants(actor=args.actor, ref=args["ref"], tenants=args["tenants"])
        return Reply(f"{item.ref}: now affects {', '.join(self.items.get(item.ref).tenants)}")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """A work item button: `acknowledge` on `INC-1` ..."""
        if verb not in _DONE:
            raise UsageError(f"unknown button workitem.{verb}")
        item = self.items.act(actor=actor, ref=value, action=verb)
        return Reply(f"{item.ref} {_DONE[verb]} — now {item.state}")

    # ------------------------------------------------------------------ reading

    def _list_verb(self, kind: Kind) -> Verb:
        which = tuple(WHICH[kind])
        states = Choice(which, f"a list ({', '.join(which[:-1])} or {which[-1]})")
        return Verb("list", f"{kind.value}s newest first, {PAGE_SIZE} a page, with age and state: open ones "
                            f"(or {', '.join(which[1:-1])} or all), by severity, tenant, age, yours "
                            "or words of the title",
                    Anywhere("which", states), Anywhere("severity", SEVERITY), Opt("tenant", TENANT),
                    Opt("since", DURATION), Anywhere("mine", Choice(("mine",), "mine")),
                    Rest("text", quoted=True, label="text"), Opt("page", _PAGE), run=self._list(kind))

    def _list(self, kind: Kind) -> Run:
        def run(args: Args) -> Reply:
            query = ItemQuery(kind=kind, which=args["which"] or "open", severity=args["severity"],
                              tenant=args["tenant"], since=args["since"],
                              mine=args.actor if args["mine"] else None, text=args["text"],
                              page=args["page"] or 1)
            return page_reply(self.items.search(query), args.command)
        return run

    def press_list(self, verb: str, value: str, actor: str) -> tuple[str, str]:
        """The Next button of a list: which command to run, with which words (only its `list` verb)."""
        command, _, words = value.partition(" ")
        if verb != "next" or command not in ("/incident", "/escalate", "/exception"):
            raise UsageError(f"unknown button list.{verb}")
        return command, f"list {words}"

    def _status(self, args: Args) -> Reply:
        view, card, open_loops = self.cards.status(args["ref"])
        return status_reply(view, card, open_loops)


def status_reply(view: ItemView, card: Message, open_loops: list[str]) -> Reply:
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
