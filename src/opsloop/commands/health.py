"""/health: an account's score, factors and trend; the caller's accounts by risk; prompt buttons."""

from __future__ import annotations

from datetime import date, timedelta

from opsloop.commands.grammar import Args, Command, Rest, Verb
from opsloop.commands.plays import PlayCommands
from opsloop.health.daily import HORIZONS, DayScore, change
from opsloop.health.models import TAKEN
from opsloop.health.play_service import Plays
from opsloop.health.present_plays import list_line
from opsloop.health.prompts import LABELS, answered_message, playbook_summary, renewal_text
from opsloop.health.score import AT_RISK, HEALTHY, WATCH
from opsloop.health.service import AccountHealth, Health
from opsloop.messages import Message, Reply, escape, user
from opsloop.status.availability import Availability

ICONS = {HEALTHY: "🟢", WATCH: "🟡", AT_RISK: "🔴"}
SPARKS = "▁▂▃▄▅▆▇█"


class HealthCommands:
    def __init__(self, health: Health, plays: Plays) -> None:
        self.health = health
        self.plays = PlayCommands(plays)

    def command(self) -> Command:
        return Command("/health", "customer health and risk prompts", [
            Verb("account", "the account's score (0-100), band, the factors behind it and its trend",
                 Rest("account", required=True, label="ACCOUNT"), run=self._one, bare=self._mine),
            Verb("mine", "the accounts you are the CSM of, most at risk first (also: `/health` alone)",
                 run=self._mine),
            *self.plays.verbs(),
        ], default="account", hint="To see an account, give its id: `/health ACCOUNT`",
            footer="At-risk accounts prompt their CSM by DM with buttons: Take it (opens a play), Snooze, "
                   "Not a risk.")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The prompt's buttons (`health.take` opens a play; `health.snooze`, `health.dismiss`), and
        a play's (`health.step`, `health.close`)."""
        answered = self.plays.press(verb, value, actor)
        if answered is not None:
            return answered
        prompt, name = self.health.answer(actor=actor, prompt_id=value, verb=verb)
        note = answered_message(prompt, name).text
        if prompt.status == TAKEN and prompt.playbook:
            summary = playbook_summary(self.health.playbooks, prompt.playbook)
            note += f"\nPlaybook *{prompt.playbook}*: {summary}"
        return Reply(note)

    def _one(self, args: Args) -> Reply:
        found = self.health.view(actor=args.actor, account=args["account"])
        now = self.health.clock.now()
        play = self.plays.plays.open_for(found.account.id)
        return Reply(headline(found), message=account_message(
            found, self.health.today(now), play=list_line(play, now) if play is not None else None,
            availability=self.health.availability(found.account.id)))

    def _mine(self, args: Args) -> Reply:
        found = self.health.mine(actor=args.actor)
        if not found:
            return Reply("You are not the CSM of any account in the catalog.")
        today = self.health.today(self.health.clock.now())
        lines = [f"{ICONS.get(h.score.band, '')} *{escape(h.account.name)}* (`{h.account.id}`) "
                 f"{h.score.score}/100 {h.score.band} · {trend(h, today, spark=False)} · ${h.account.arr:,}"
                 + (f" · prompt {h.prompt.status}" if h.prompt else "") for h in found]
        return Reply(f"Your accounts, most at risk first ({len(found)}):\n" + "\n".join(lines))


def headline(h: AccountHealth) -> str:
    return (f"{ICONS.get(h.score.band, '')} {escape(h.account.name)} (`{h.account.id}`): health "
            f"{h.score.score}/100, {h.score.band} ({h.account.tier})")


def trend(h: AccountHealth, today: date, *, spark: bool = True) -> str:
    """The 30- and 90-day trend from the daily series (the last score of each local day)."""
    parts = []
    shown: DayScore | None = None
    for days in HORIZONS:
        pair = change(h.days, today=today, days=days)
        if pair is None or pair[0] == shown:
            continue  # no earlier day in this window than in the shorter one: it says nothing new
        first, last = pair
        shown = first
        parts.append(f"{days}d {last.score - first.score:+d} ({first.score} → {last.score})")
    if not parts:
        return "no trend yet (fewer than two days scored)"
    recent = [p.score for p in h.days if p.day >= today - timedelta(days=HORIZONS[0])]
    line = " · ".join(parts)
    if spark and len(recent) > 1:
        line = "".join(SPARKS[min(len(SPARKS) - 1, s * len(SPARKS) // 101)] for s in recent) + " " + line
    return line


def account_message(h: AccountHealth, today: date, *, play: str | None = None,
                    availability: Availability | None = None) -> Message:
    a = h.assessment
    lines = []
    for rule in a.rules:
        lines.append(f"• *{LABELS.get(rule.name, rule.name)}*: {rule.evidence}")
    for factor in a.factors:
        points = f"-{factor.points:g}" if factor.points else "0"
        lines.append(f"• {LABELS.get(factor.name, factor.name)} {points}: {factor.evidence}")
    prompt = "none"
    if h.prompt is not None:
        by = f" by {user(h.prompt.answered_by)}" if h.prompt.answered_by else ""
        prompt = f"{h.prompt.status}{by} (prompt {h.prompt.id}, playbook {h.prompt.playbook or '—'})"
    return Message(
        text=headline(h),
        fields=[("ARR", f"${h.account.arr:,}"),
                ("Renewal", renewal_text(h.account.renewal_date, today)),
                ("CSM", user(h.account.csm)),
                ("Trend", trend(h, today)),
                *([("Availability", availability.summary())] if availability else []),
                ("Prompt", prompt),
                *([("Play", play)] if play else [])],
        body="*Factors* (points off 100)\n" + "\n".join(lines),
        context=f"scored {h.score.at.strftime('%Y-%m-%d %H:%M')} UTC after {escape(h.score.cause)}",
    )
