"""A review in words: the Markdown document (canvas, file, `opsloop review`), the thread message, the form.

The document has the record's facts (summary, impact, timeline), the sections people write
(contributing factors, what went well, what went badly), the follow-ups with their state, and the
customer-facing part (what happened, what we changed) that `present.customer_review` renders per
tenant. Slack mrkdwn in the record (mentions, links) is turned into Markdown here.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from opsloop import outbox
from opsloop.durations import format_duration
from opsloop.events import Recurred, ReviewChanged, ReviewReminded
from opsloop.messages import Button, Form, FormField, Message, escape, user
from opsloop.outbox import CHAT
from opsloop.present.items import Cards, in_card_thread
from opsloop.reviews.models import DRAFT, IN_REVIEW, PUBLISHED, SECTIONS, FollowUp, Review

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>")
_CHANNEL = re.compile(r"<#([^>|]+)(?:\|[^>]*)?>")
_STATE_ICON = {DRAFT: "📝", IN_REVIEW: "👀", PUBLISHED: "✅"}


def markdown_text(mrkdwn: str) -> str:
    """Slack mrkdwn (from the record) as Markdown: mentions as @U1, links as [words](url)."""
    text = _LINK.sub(lambda m: f"[{m.group(2)}]({m.group(1)})", mrkdwn)
    text = _CHANNEL.sub(r"#\1", _MENTION.sub(r"@\1", text))
    return html.unescape(text)


def _time(value: str | None, zone: ZoneInfo) -> str:
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _money(amount: int) -> str:
    return f"{amount:,}"


def sla_outcome(clock: dict[str, Any], zone: ZoneInfo) -> str:
    target = format_duration_seconds(int(clock["target_seconds"]))
    state = clock["state"]
    if state == "met":
        met, due = _time(clock["stopped_at"], zone), _time(clock["due_at"], zone)
        return f"{clock['target']} ({target}): met at {met}, due {due}"
    if state == "breached":
        stopped = f", stopped at {_time(clock['stopped_at'], zone)}" if clock.get("stopped_at") else ""
        return (
            f"{clock['target']} ({target}): breached at {_time(clock['settled_at'] or clock['due_at'], zone)}"
            f"{stopped}"
        )
    return f"{clock['target']} ({target}): {state}, due {_time(clock['due_at'], zone)}"


def format_duration_seconds(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


def markdown(
    review: Review, doc: dict[str, Any], followups: list[FollowUp], zone: ZoneInfo, now: datetime
) -> str:
    """The whole review as a Markdown document."""
    impact = doc["impact"]
    owned = f"@{review.owner}" if review.owner else "unassigned"
    out = [
        f"# Post-incident review: {doc['ref']} {doc['title']}",
        "",
        f"*{review.state}* · version {review.version} · severity {doc['severity']} · owner {owned} · "
        f"due {review.due_at.astimezone(zone).strftime('%Y-%m-%d %H:%M %Z')}",
    ]
    if review.state == PUBLISHED and review.sha256:
        at = review.published_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if review.published_at else ""
        out.append(f"Published {at} by @{review.published_by} · sha256 `{review.sha256}`")
    if doc.get("recurrence"):
        out += ["", f"> ♻️ {doc['recurrence']}"]
    out += ["", "## Summary", "", doc.get("summary") or "_(to write)_", "", "## Impact", ""]
    tenants = impact["tenants"]
    if tenants:
        out.append(
            f"- Tenants ({len(tenants)}): "
            + ", ".join(f"{t['name']} ({t['tier']}, ARR {_money(t['arr'])})" for t in tenants)
        )
        out.append("- Tiers: " + ", ".join(f"{n} {tier}" for tier, n in sorted(impact["tiers"].items())))
        out.append(f"- ARR affected: {_money(impact['arr'])}")
    else:
        out.append("- Tenants: none named")
    out.append(
        f"- Started {_time(impact['started_at'], zone)}; impact ended "
        f"{_time(impact['impact_ended_at'], zone) if impact['impact_ended_at'] else 'not yet'} "
        f"({impact['impact_minutes']:,} minutes)"
    )
    out.append(f"- Duration to resolution: {format_duration_seconds(impact['duration_seconds'])}")
    out.append(f"- Customer-minutes: {impact['customer_minutes']:,}")
    for clock in impact["sla"]:
        out.append(f"- SLA {sla_outcome(clock, zone)}")
    out += ["", "## Timeline", ""]
    out += [f"- {_time(e['at'], zone)} — {markdown_text(e['text'])}" for e in doc["timeline"]]
    for key, title in SECTIONS[1:4]:
        out += ["", f"## {title}", "", doc.get(key) or "_(to write)_"]
    out += ["", "## Follow-ups", ""]
    out += [f"- {_followup(f, now, zone)}" for f in followups] or [
        f'_(none yet: `/incident followup {doc["ref"]} "what" @owner due:14d`)_'
    ]
    out += [
        "",
        "## For customers",
        "",
        "### What happened",
        "",
        doc.get("public_what_happened") or "_(to write)_",
        "",
        "### What we changed",
        "",
        doc.get("public_what_we_changed") or "_(to write)_",
        "",
    ]
    return "\n".join(out)


def _followup(found: FollowUp, now: datetime, zone: ZoneInfo) -> str:
    due = found.due_at.astimezone(zone).strftime("%Y-%m-%d")
    if found.closed_at is not None:
        state = f"closed {found.closed_at.astimezone(zone).strftime('%Y-%m-%d')}: {found.note}"
    else:
        state = ("overdue, was due " if found.due_at <= now else "due ") + due
    link = f" ([link]({found.link}))" if found.link else ""
    return f"{'[x]' if found.closed_at else '[ ]'} {found.ref} {found.what}{link} — @{found.owner}, {state}"


def thread_message(review: Review, doc: dict[str, Any], followups: list[FollowUp], zone: ZoneInfo) -> Message:
    """The review in the item's thread: where it stands, the impact in brief, and what to do next."""
    impact = doc["impact"]
    fields = [
        ("State", f"{review.state} (v{review.version})"),
        ("Owner", owner_words(review.owner)),
        ("Due", review.due_at.astimezone(zone).strftime("%a %d %b %H:%M")),
        ("Tenants", str(len(impact["tenants"]))),
        ("ARR", _money(impact["arr"])),
        ("Customer-minutes", f"{impact['customer_minutes']:,}"),
        ("Follow-ups", f"{sum(1 for f in followups if f.closed_at is None)} open of {len(followups)}"),
    ]
    missed = [c["target"] for c in impact["sla"] if c["state"] == "breached"]
    if missed:
        fields.append(("SLA missed", ", ".join(missed)))
    return Message(
        text=f"{_STATE_ICON.get(review.state, '📝')} Review of {doc['ref']}: {escape(doc['title'])}",
        fields=fields,
        body=escape(doc.get("summary") or ""),
        buttons=buttons(review, doc["ref"]),
        context=(
            f"sha256 {review.sha256}"
            if review.sha256
            else "Facts drafted from the record; people write the rest (Edit…)."
        ),
    )


def buttons(review: Review, ref: str) -> list[Button]:
    if review.state == PUBLISHED:
        return [Button("Send to customers…", "review.share", ref)]
    found = [Button("Edit…", "review.edit", ref)]
    if review.state == DRAFT:
        found.append(Button("Submit for review", "review.submit", ref, style="primary"))
    else:
        found.append(Button("Publish", "review.publish", ref, style="primary"))
    return found


def edit_form(ref: str, doc: dict[str, Any]) -> Form:
    return Form(
        id="review.edit",
        title=f"Review of {ref}",
        context=ref,
        submit_label="Save",
        usage=f"(in Slack: the Edit… button of the review; here: `/incident review {ref}` shows it)",
        fields=[
            FormField(key, title, multiline=True, optional=True, initial=(doc.get(key) or None))
            for key, title in SECTIONS
        ],
    )


def reminder(review: Review, ref: str, title: str, stage: str, zone: str) -> Message:
    when = review.due_at.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")
    said = f"is overdue (it was due {when})" if stage == "overdue" else f"is due {when}"
    return Message(
        text=f"⏰ The review of {ref} {said}: {escape(title)}",
        buttons=buttons(review, ref),
        context=f"It is {review.state}; `/incident review {ref}` shows it.",
    )


def owner_words(owner: str) -> str:
    """A review's owner as people read it: a mention, or that nobody owns it yet."""
    return user(owner) if owner else "unassigned"


def unowned(review: Review, ref: str, title: str, stage: str, zone: str) -> Message:
    """To each person who may assign a review nobody owns: drafted, due soon, or overdue."""
    when = review.due_at.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")
    said = {"drafted": f"was drafted and nobody owns it (due {when})",
            "overdue": f"is overdue (it was due {when}) and nobody owns it"}.get(
        stage, f"is due {when} and nobody owns it")
    return Message(
        text=f"📝 The review of {ref} {said}: {escape(title)}",
        buttons=buttons(review, ref),
        context=f"No person worked {ref}. Give it an owner: `/incident review {ref} owner:@someone`.",
    )


DOC = "review_doc"  # the outbox payload `op` of a review document: a canvas, else a file in the thread


def doc_key(ref: str) -> str:
    """The outbox key of a review's first document; later versions edit it (update_key)."""
    return f"review:{ref}:doc"


def message_key(ref: str) -> str:
    return f"review:{ref}:message"


class ReviewWords:
    """A review on its item's timeline and thread, as a document (a canvas or a Markdown file), and to
    its owner."""

    def __init__(self, cards: Cards) -> None:
        self.cards = cards

    def changed(self, session: Session, event: ReviewChanged) -> None:
        item, review, zone = event.item, event.review, ZoneInfo(self.cards.policy.timezone)
        doc, followups = dict(event.doc), list(event.followups)
        due = review.due_at.astimezone(zone).strftime("%a %d %b %H:%M")
        who, ref = user(event.actor), item.ref
        said = {
            "drafted": f"📝 {who} drafted the review of {ref}: owner {owner_words(review.owner)}, due {due}",
            "saved": f"📝 {user(event.actor)} saved version {review.version} of the review of {item.ref}",
            "submitted": f"👀 {user(event.actor)} submitted the review of {item.ref} for review",
            "published": f"✅ {who} published the review of {ref} (sha256 {review.sha256})",
            "owner": f"📝 {user(review.owner)} owns the review of {item.ref} now",
            "shared": f"📣 {who} shared the customer account of the review of {ref}: a customer notice, "
            "sent once someone presses Send in its draft",
        }[event.what]
        self.cards.story(session, item, event.actor, f"review.{event.what}", said, event.at)
        if event.what == "shared":
            self.cards.say(session, item, said, event.at)
            return
        shown = thread_message(review, doc, followups, zone).to_json()
        document = {
            "op": DOC,
            "title": f"Review of {item.ref}: {item.title}"[:250],
            "version": review.version,
            "filename": f"{item.ref}-review-v{review.version}.md",
            "markdown": markdown(review, doc, followups, zone, event.at),
            "line": f"📄 The review of {item.ref}, version {review.version} ({review.state})",
        }
        channel = item.channel or ""
        if event.what != "drafted":
            self.cards.say(session, item, said, event.at)
        # the thread message and the document: posted under the card when drafted, edited in place after
        for key, payload in ((message_key(ref), {"message": shown}), (doc_key(ref), document)):
            in_card_thread(session, ref=ref, channel=channel, key=key, payload=payload, at=event.at,
                           new=event.what == "drafted", lane=f"{CHAT}:{channel}:edit:{key}")
        if review.owner not in ("", event.actor, event.by) and event.what in ("drafted", "owner"):
            outbox.enqueue(
                session,
                transport=CHAT,
                target=review.owner,
                now=event.at,
                key=f"review:{item.ref}:owner:{review.owner}:{event.what}",
                payload={
                    "message": {**shown, "text": f"📝 You own the review of {item.ref}: {escape(item.title)}"}
                },
            )

    def recurred(self, session: Session, event: Recurred) -> None:
        said = f"♻️ {event.item.ref} {event.text} (theme {escape(event.theme)})"
        self.cards.story(session, event.item, "system:opsloop", "recurred", said, event.at)
        self.cards.say(session, event.item, said, event.at)

    def reminded(self, session: Session, event: ReviewReminded) -> None:
        """Its owner is reminded; a review nobody owns: each person who may assign it is asked instead."""
        item, review, zone = event.item, event.review, self.cards.policy.timezone
        if review.owner:
            outbox.enqueue(session, transport=CHAT, target=review.owner, now=event.at,
                           key=f"review:{item.ref}:remind:{event.reminders}",
                           payload={"message": reminder(review, item.ref, item.title, event.stage,
                                                        zone).to_json()})
            return
        message = unowned(review, item.ref, item.title, event.stage, zone).to_json()
        for person in event.assigners:
            outbox.enqueue(session, transport=CHAT, target=person, now=event.at,
                           key=f"review:{item.ref}:unowned:{event.stage}:{event.reminders}:{person}",
                           payload={"message": message})
