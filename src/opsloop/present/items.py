"""A work item in its channel: the card, edited in place as the item changes, and its thread.

The card shows what every capability knows about the item (its clocks, its
runbook's progress, its alerts, its feedback loops); this module reads them,
so no capability needs to know the card exists. Every line said in the
thread is also a line of the item's timeline, unless a change is `quiet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.changes.service import Changes
from opsloop.clock import Clock
from opsloop.events import AlertsUpdated, ChannelSettled, ItemChanged, ItemCreated
from opsloop.incident_roles.service import holders
from opsloop.intake.context import AlertContext
from opsloop.intake.service import Intake
from opsloop.lifecycle import TRANSITIONS, next_actions
from opsloop.loops.service import FeedbackLoops
from opsloop.messages import Button, Message, channel, escape, user
from opsloop.models import OutboxMessage, TimelineEvent, WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.present import alerts as alert_words
from opsloop.present import checklist as runbook_words
from opsloop.present import clocks as clock_words
from opsloop.present.alerts import changes_line
from opsloop.reviews import recurrence
from opsloop.runbooks.runs import Runbooks
from opsloop.sla.service import Sla
from opsloop.types import OPSLOOP, Kind, State
from opsloop.workitems import ItemView, WorkItems, find

CARD_OF = "card_of"  # an outbox payload naming a card to render when it is sent
_LABELS = {
    "acknowledge": ("Acknowledge", "primary"),
    "mitigate": ("Mitigated", None),
    "resolve": ("Resolve", "primary"),
    "close": ("Close", None),
    "reopen": ("Reopen", "danger"),
    "approve": ("Approve", "primary"),
    "reject": ("Reject", "danger"),
    "expire": ("End now", "danger"),
    "end": ("End now", "danger"),
}
_ICON = {"sev1": "🔴", "sev2": "🟠", "sev3": "🟡", "sev4": "⚪"}
_DONE_STATES = {State.RESOLVED: "🟢", State.CLOSED: "⚫"}  # the card's colour once it is over
_CREATED = {Kind.INCIDENT: "declared", Kind.ESCALATION: "opened", Kind.EXCEPTION: "requested",
            Kind.MAINTENANCE: "scheduled", Kind.TASK: "scheduled"}


def card_key(ref: str) -> str:
    """The outbox key of a work item's card; edits and thread lines point at it."""
    return f"card:{ref}"


def in_card_thread(session: Session, *, ref: str, channel: str, key: str, payload: dict[str, Any],
                   at: datetime, new: bool, lane: str, delay: timedelta = timedelta(0)) -> None:
    """A message kept up to date under item `ref`'s card: posted in its thread once (`new`), under the
    idempotent `key`, then edited in place; an edit supersedes those still waiting in `lane`, and
    `delay` holds it back (at most one edit per `delay`)."""
    if new:
        outbox.enqueue(session, transport=CHAT, target=channel, now=at, key=key, thread_key=card_key(ref),
                       payload=payload)
    else:
        outbox.enqueue(session, transport=CHAT, target=channel, now=at, update_key=key, lane=lane,
                       supersede=True, payload=payload, delay=delay)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def card(item: WorkItem, tenants: list[str], extra: list[tuple[str, str]] | None = None,
         extra_buttons: list[Button] | None = None, body: list[str] | None = None) -> Message:
    kind, state = Kind(item.kind), State(item.state)
    fields = [
        ("Severity", item.severity),
        ("State", state.value),
        ("Tenants", ", ".join(tenants) or "—"),
        ("Owner", user(item.owner)),
    ]
    if kind in (Kind.INCIDENT, Kind.ESCALATION):
        fields.append(("Comms", user(item.comms_owner)))
    if item.expires_at is not None:
        fields.append(("Expires", when(item.expires_at)))
    if kind is Kind.MAINTENANCE:  # its window, as scheduled
        fields += [(name, when(datetime.fromisoformat(item.labels[key])))
                   for name, key in (("From", "starts_at"), ("Until", "ends_at")) if key in item.labels]
        fields.append(("Covers", escape(item.labels.get("matchers", ""))))
    fields += extra or []
    buttons = []
    family = "maintenance" if kind is Kind.MAINTENANCE else "workitem"  # its own service ends it
    # a resolved or closed card keeps only what still makes sense there: Reopen (Close is a command)
    shown = ["reopen"] if state in _DONE_STATES else next_actions(kind, state)
    for action in shown:
        if action not in _LABELS:
            continue  # e.g. a window's start: its time starts it
        label, style = _LABELS[action]
        buttons.append(Button(label=label, action=f"{family}.{action}", value=item.ref,
                              style=style))  # type: ignore[arg-type]
    buttons += extra_buttons or []
    icon = _DONE_STATES.get(state) or _ICON.get(item.severity, "")
    return Message(
        text=f"{icon} {item.ref} {escape(item.title)}".strip(),
        fields=fields,
        body="\n".join(body) if body else None,
        buttons=buttons,
        context=f"{kind.value} opened by {user(item.created_by)} at {when(item.created_at)}",
    )


def change_line(event: ItemChanged) -> str:
    """What a change says in the item's thread and timeline."""
    item, actor, note = event.item, user(event.actor), event.note
    about = f": {escape(note)}" if note else ""
    if event.action == "assign":
        incident = item.kind == Kind.INCIDENT.value
        handed = event.changed.get("owner")
        if incident and handed is not None and handed[0] and handed[0] != handed[1]:
            handoff = f"{actor} handed command of {item.ref} from {user(handed[0])} to {user(handed[1])}"
            comms = event.changed.get("comms_owner")
            return handoff + (f", and made {user(comms[1])} comms owner" if comms else "")
        names = (("owner", "commander" if incident else "owner"), ("comms_owner", "comms owner"))
        parts = [f"{label} {user(event.changed[name][1])}" for name, label in names if name in event.changed]
        return f"{actor} made {' and '.join(parts)} of {item.ref}"
    if event.action == "severity":
        before, after = event.changed.get("severity", (None, item.severity))
        return f"{actor} changed the severity of {item.ref} from {before} to {after}{about}"
    if event.action == "role":
        ((key, (before, after)),) = event.changed.items()
        role = key.removeprefix("role.")
        was = f" (was {user(before)})" if before else ""
        return f"{actor} made {user(after)} {role} of {item.ref}{was}"
    if event.action == "close" and event.forced:
        return f"{actor} closed {item.ref} with runbook steps still open (forced){about}"
    if event.action == "tenants":
        before, after = event.changed.get("tenants", ((), ()))
        return f"{actor} added {', '.join(t for t in after if t not in before)} to {item.ref}"
    if event.action == "pause":
        return f"{actor} paused the clocks of {item.ref}{about}"
    if event.action == "resume":
        return f"{actor} resumed the clocks of {item.ref}"
    if event.action == "update":
        return f"📣 Update from {actor} on {item.ref}{about}"
    step = TRANSITIONS[Kind(item.kind)].get(event.action)
    verb = step.verb if step is not None else event.action
    return f"{actor} {verb} {item.ref}{about}"


@dataclass(eq=False)
class Cards:
    """Handlers that show work items, and the building blocks other presenters share."""

    clock: Clock
    policy: Policy
    items: WorkItems
    sla: Sla
    runbooks: Runbooks
    intake: Intake
    loops: FeedbackLoops
    changes: Changes

    # ------------------------------------------------------------------ handlers

    def post(self, session: Session, event: ItemCreated) -> None:
        """The new item's card, in its channel (with whatever the handlers before this one attached)."""
        item = event.item
        line = f"{user(event.actor)} {_CREATED[Kind(item.kind)]} {item.ref}: {escape(item.title)}"
        self.story(session, item, event.actor, "created", line, event.at)
        recent = changes_line(self.changes.recent(session, item))
        if recent:  # on the record: what changed on its service before it started
            self.story(session, item, OPSLOOP, "changes", recent, event.at)
        outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=event.at,
                       key=card_key(item.ref),
                       payload={"message": self.card(session, item, list(event.tenants)).to_json()})

    def tell(self, session: Session, event: ItemChanged) -> None:
        """A change: on the timeline, on the card, and (unless quiet) in the thread."""
        line = change_line(event)
        self.story(session, event.item, event.actor, event.action, line, event.at)
        self.refresh(session, event.item, event.at, debounce=event.debounce, tenants=list(event.tenants))
        if not event.quiet:
            self.say(session, event.item, line, event.at)

    def alerts(self, session: Session, event: AlertsUpdated) -> None:
        self.refresh(session, event.item, event.at, debounce=event.debounce)

    def channel_settled(self, session: Session, event: ChannelSettled) -> None:
        """Where an incident with a channel of its own lives: on its timeline, and said in `ops`."""
        ref = event.item.ref
        if not event.created:
            self.story(session, event.item, OPSLOOP, "channel_failed", f"could not create a channel for "
                       f"{ref} ({event.reason}); it stays in {channel(event.channel)}", event.at)
            return
        line = f"{ref} has its own channel: {channel(event.channel)}"
        self.story(session, event.item, OPSLOOP, "channel", line, event.at)
        outbox.enqueue(session, transport=CHAT, target=self.policy.channel("ops"), now=event.at,
                       key=f"{card_key(ref)}:moved", payload={"message": Message(text=line).to_json()})
        posted = session.exec(select(OutboxMessage).where(OutboxMessage.key == card_key(ref))).first()
        if posted is not None and posted.target != event.channel and not posted.target.startswith("pending:"):
            # raised to this severity after its card was posted: the card and thread stay where they are
            where = f"{ref} was raised to {event.item.severity}; its card and thread are in " \
                    f"{channel(posted.external_target or posted.target)}"
            outbox.enqueue(session, transport=CHAT, target=event.channel, now=event.at,
                           key=f"{card_key(ref)}:here", payload={"message": Message(text=where).to_json()})

    # ------------------------------------------------------------------ building blocks

    def story(self, session: Session, item: WorkItem, actor: str, action: str, line: str,
              at: datetime) -> None:
        """A line of the item's timeline (what `/incident status` shows)."""
        assert item.id is not None
        session.add(TimelineEvent(work_item_id=item.id, at=at, actor=actor, action=action, text=line))

    def say(self, session: Session, item: WorkItem, line: str, at: datetime, *,
            broadcast: bool = False) -> None:
        """A line in the item's thread (`broadcast`: also shown in the channel)."""
        payload = {"message": Message(text=line).to_json(), **({"broadcast": True} if broadcast else {})}
        outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=at,
                       thread_key=card_key(item.ref), payload=payload)

    def refresh(self, session: Session, item: WorkItem, at: datetime, *, debounce: timedelta = timedelta(0),
                tenants: list[str] | None = None) -> None:
        """Edit the item's card in place.

        Edits of one card have a lane of their own (an edit is no new message in
        the channel) and supersede edits still waiting; `debounce` folds a burst
        of machine-made changes into at most one edit per period. A debounced
        edit is queued as "this card, as it is when sent" (rendered by
        `prepare_outbound`), so a storm queues one cheap row per card.
        """
        key = card_key(item.ref)
        lane = f"{CHAT}:{item.channel}:edit:{item.ref}"
        if debounce > timedelta(0):
            waiting = session.exec(select(OutboxMessage.id).where(
                OutboxMessage.update_key == key, OutboxMessage.status == outbox.PENDING,
                col(OutboxMessage.leased_until).is_(None))).first()
            if waiting is None:
                outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=at,
                               update_key=key, lane=lane, delay=debounce, payload={CARD_OF: item.ref})
            return
        assert item.id is not None
        shown = self.card(session, item,
                          tenants if tenants is not None else self.items.tenants(session, item.id))
        outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=at, update_key=key, lane=lane,
                       supersede=True, payload={"message": shown.to_json()})

    def prepare_outbound(self, session: Session, message: OutboxMessage) -> None:
        """Render a card queued as `{"card_of": ref}` as it is now, just before it is sent."""
        ref = message.payload.get(CARD_OF)
        if ref is None:
            return
        item = find(session, ref)
        assert item.id is not None
        now = self.card(session, item, self.items.tenants(session, item.id))
        message.payload = {"message": now.to_json()}  # stored: the record of what was sent

    def of(self, ref: str) -> Message:
        """The item's card as it is now."""
        return self.status(ref)[1]

    def status(self, ref: str) -> tuple[ItemView, Message, list[str]]:
        """An item (with its timeline), its card, and its open feedback loops, one line each."""
        with self.items.db.transaction() as session:
            view = self.items.view(session, ref)
            card_now = self.card(session, view.item, view.tenants)
            return view, card_now, self.loops.describe_open(session, view.item)

    def card(self, session: Session, item: WorkItem, tenants: list[str]) -> Message:
        """The card: the item, then what each capability shows of it."""
        if item.id is None:
            return card(item, tenants)
        now = self.clock.now()
        clocks = self.sla.clocks(session, item)
        alerts = self.intake.context(session, item)  # its counts are the Alerts field's too
        fields = [*runbook_words.card_fields(self.runbooks.progress(session, item)),
                  *self._alerts(item, alerts), *self._loops(session, item),
                  *((clock_words.LABELS[c.target], clock_words.describe(self.sla.book, c, now))
                    for c in clocks)]
        body, buttons = [], clock_words.card_buttons(item, clocks)
        if alerts is not None:
            body += alert_words.alert_lines(alerts)
            buttons = alert_words.alert_buttons(alerts) + buttons
        recent = changes_line(self.changes.recent(session, item))
        if recent:
            body.append(recent)
        if item.kind == Kind.INCIDENT.value:
            body += [f"*{role.capitalize()}*: {user(who) if who else 'nobody yet'} — {escape(duty)}"
                     for role, duty, who in holders(session, self.policy, item)]
        if item.kind == Kind.INCIDENT.value and item.state != State.CLOSED.value:
            buttons.append(Button(label="Public update", action="notice.compose", value=item.ref))
        recurred = recurrence.of_item(session, item)
        if recurred:
            fields.append(("Recurred", f"♻️ {recurred}"))
        return card(item, tenants, fields, buttons, body)

    def _alerts(self, item: WorkItem, alerts: AlertContext | None) -> list[tuple[str, str]]:
        if alerts is None:  # it has no alerts
            return []
        text = f"{alerts.firing} firing · {alerts.resolved} resolved"
        return [("Alerts", text + (" · flapping" if item.labels.get("flapping") == "yes" else ""))]

    def _loops(self, session: Session, item: WorkItem) -> list[tuple[str, str]]:
        still_open, total = self.loops.counts(session, item)
        return [("Loops", f"{still_open} of {total} open")] if total else []
