"""/health: an account's score, factors and trend; the caller's accounts by risk; prompt buttons."""

from __future__ import annotations

from datetime import date

from opsloop.commands.parse import tokens
from opsloop.errors import UsageError
from opsloop.health.models import TAKEN
from opsloop.health.prompts import LABELS, answered_message, renewal_text
from opsloop.health.score import AT_RISK, HEALTHY, WATCH
from opsloop.health.service import AccountHealth, Health
from opsloop.messages import Message, Reply, escape, user

HEALTH_HELP = """\
*/health* — customer health and risk prompts
• `/health ACCOUNT` — the account's score (0-100), band, the factors behind it and its trend
• `/health mine` (or just `/health`) — the accounts you are the CSM of, most at risk first
• `/health help`
At-risk accounts prompt their CSM by DM with buttons: Take it, Snooze, Not a risk."""

ICONS = {HEALTHY: "🟢", WATCH: "🟡", AT_RISK: "🔴"}
SPARKS = "▁▂▃▄▅▆▇█"


class HealthCommands:
    def __init__(self, health: Health) -> None:
        self.health = health

    def command(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        if not words or words[0].lower() == "mine":
            if len(words) > 1:
                raise UsageError("usage: /health mine")
            return self._mine(actor)
        if words[0].lower() == "help":
            return Reply(HEALTH_HELP)
        return self._one(" ".join(words), actor)

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The prompt's buttons: `health.take`, `health.snooze`, `health.dismiss` with the prompt id."""
        prompt, name = self.health.answer(actor=actor, prompt_id=value, verb=verb)
        note = answered_message(prompt, name).text
        if prompt.status == TAKEN and prompt.playbook:
            note += f"\nPlaybook *{prompt.playbook}*: {self.health.config.playbooks[prompt.playbook].text}"
        return Reply(note)

    def _one(self, account: str, actor: str) -> Reply:
        found = self.health.view(actor=actor, account=account)
        today = self.health.today(self.health.clock.now())
        return Reply(headline(found), message=account_message(found, today))

    def _mine(self, actor: str) -> Reply:
        found = self.health.mine(actor=actor)
        if not found:
            return Reply("You are not the CSM of any account in the catalog.")
        lines = [f"{ICONS.get(h.score.band, '')} *{escape(h.account.name)}* (`{h.account.id}`) "
                 f"{h.score.score}/100 {h.score.band} · {trend(h)} · ${h.account.arr:,}"
                 + (f" · prompt {h.prompt.status}" if h.prompt else "") for h in found]
        return Reply(f"Your accounts, most at risk first ({len(found)}):\n" + "\n".join(lines))


def headline(h: AccountHealth) -> str:
    return (f"{ICONS.get(h.score.band, '')} {escape(h.account.name)} (`{h.account.id}`): health "
            f"{h.score.score}/100, {h.score.band} ({h.account.tier})")


def trend(h: AccountHealth) -> str:
    scores = [row.score for row in h.history]
    if len(scores) < 2:
        return "no trend yet"
    spark = "".join(SPARKS[min(len(SPARKS) - 1, s * len(SPARKS) // 101)] for s in scores)
    change = scores[-1] - scores[0]
    days = (h.history[-1].at - h.history[0].at).days
    return f"{spark} {change:+d} over {days}d" if days else f"{spark} {change:+d}"


def account_message(h: AccountHealth, today: date) -> Message:
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
    history = " → ".join(str(row.score) for row in h.history)
    return Message(
        text=headline(h),
        fields=[("ARR", f"${h.account.arr:,}"),
                ("Renewal", renewal_text(h.account.renewal_date, today)),
                ("CSM", user(h.account.csm)),
                ("Trend", f"{trend(h)} ({history})"),
                ("Prompt", prompt)],
        body="*Factors* (points off 100)\n" + "\n".join(lines),
        context=f"scored {h.score.at.strftime('%Y-%m-%d %H:%M')} UTC after {escape(h.score.cause)}",
    )
