"""The leadership digest (`opsloop.digest`'s data) as a neutral `Message` (Slack renders it as Block Kit)
and as plain text.

One screen: a headline that says whether resolution times are in control, ten
short fields (yesterday first, the week after it), then at most five short
lists. Both renderings come from the same lines; only the markup differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsloop.digest.control import Control, Point
from opsloop.digest.figures import DAY, WEEK, Figures, Speed
from opsloop.digest.service import Digest
from opsloop.health.leadership import CustomerFigures
from opsloop.health.score import BANDS
from opsloop.messages import Message, escape, user
from opsloop.sla.attainment import Outcomes

KINDS = (("incident", "inc"), ("escalation", "esc"), ("exception", "exc"))
TARGETS = ("response", "update", "resolution")


@dataclass(frozen=True)
class Style:
    bold: Callable[[str], str]
    text: Callable[[str], str]  # user-supplied text (titles, account names)
    user: Callable[[str], str]  # a person, by user id


MRKDWN = Style(bold=lambda s: f"*{s}*", text=escape, user=user)  # mentions as everywhere: messages.user
PLAIN = Style(bold=lambda s: s, text=lambda s: s, user=lambda u: f"@{u}")


def title(d: Digest) -> str:
    return f"Operations digest for {d.day.strftime('%a %d %b %Y')}"


def span(seconds: float | None) -> str:
    """A duration for people: 45s, 12m, 2h 05m, 3d 4h."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def money(amount: int) -> str:
    return f"${amount:,}"


def headline(d: Digest) -> str:
    c = d.control
    if c.unjudged == "history":
        state = "fewer than four weeks of history to judge resolution times"
    elif not c.judged:
        state = "not enough history to judge resolution times"
    elif c.beyond:
        worse = any(c.upper is not None and p.value > c.upper for p in c.beyond)
        state = ("🔴 resolution times out of control (slower)" if worse
                 else "🟢 resolution times out of control (faster)")
    else:
        state = "resolution times in control"
    return f"📊 {title(d)} · {state}"


def _kinds(counts: dict[tuple[str, str], int]) -> tuple[int, str]:
    per = {kind: 0 for kind, _ in KINDS}
    for (kind, _sev), n in counts.items():
        per[kind] = per.get(kind, 0) + n
    return sum(per.values()), " · ".join(f"{per[k]} {short}" for k, short in KINDS)


def _flow(f: dict[str, dict[tuple[str, str], int]]) -> str:
    total, parts = _kinds(f.get(DAY, {}))
    week, _ = _kinds(f.get(WEEK, {}))
    return f"{total} ({parts})\nweek: {week}"


def _speed(s: Style, speeds: dict[str, dict[str, Speed]]) -> str:
    lines = []
    for kind, short in KINDS[:2]:
        day, week = speeds.get(DAY, {}).get(kind), speeds.get(WEEK, {}).get(kind)
        if day is None and week is None:
            continue
        aim = (day or week or Speed()).target
        mark = "" if day is None or day.mean is None or aim is None else (" ✅" if day.mean <= aim else " ⚠️")
        lines.append(f"{short} {span(day.mean if day else None)}{mark}"
                     f" · week {span(week.mean if week else None)} · target {span(aim)}")
    return "\n".join(lines) or "nothing measured"



def _ratio(o: Outcomes | None) -> str:
    if o is None or o.ratio is None:
        return "—"
    unanswered = f", {o.no_response} no response" if o.no_response else ""
    return f"{o.ratio:.0%} ({o.met}/{o.total}{unanswered})"


def _attainment(f: Figures) -> str:
    day, week = f.attainment.get(DAY, {}), f.attainment.get(WEEK, {})
    names = [t for t in TARGETS if t in day or t in week] + sorted((set(day) | set(week)) - set(TARGETS))
    lines = [f"{t} {_ratio(day.get(t))} · week {_ratio(week.get(t))}" for t in names]
    return "\n".join(lines) or "no target settled"


def _remediation(f: Figures) -> str:
    def line(counts: dict[str, int]) -> str:
        return " · ".join(f"{counts.get(k, 0)} {k}" for k in ("succeeded", "failed", "unknown")
                          if counts.get(k) or k != "unknown")
    return (f"{line(f.remediation.get(DAY, {}))}\nweek: {line(f.remediation.get(WEEK, {}))}"
            f"\n{f.awaiting_approval} awaiting approval")


def customer_fields(c: CustomerFigures) -> list[tuple[str, str]]:
    """NRR over the year's renewals, ARR by band now, and plays: opened, closed by outcome, overdue."""
    r = c.retention
    nrr = (f"{r.nrr:.0%} · gross {r.grr:.0%}\n{r.renewals} renewals, 12 months" if r.nrr is not None
           and r.grr is not None else "no renewals recorded")
    bands = " · ".join(f"{band} {money(c.arr_by_band.get(band, 0))}" for band in BANDS)

    def closed(period: str) -> str:
        by = c.closed.get(period, {})
        return ", ".join(f"{n} {o}" for o, n in sorted(by.items())) or "none"

    plays = (f"{c.opened.get(DAY, 0)} opened · closed: {closed(DAY)}\n"
             f"week: {c.opened.get(WEEK, 0)} opened · closed: {closed(WEEK)}\n"
             f"{c.open_now} open, {c.overdue_now} overdue")
    return [("NRR", nrr), ("ARR by band", bands.replace(" · ", "\n")), ("Plays", plays)]


def _age(now: datetime, then: datetime) -> str:
    return span((now - then).total_seconds())


def fields(d: Digest, s: Style) -> list[tuple[str, str]]:
    f = d.figures
    oldest = {}
    for kind in ("escalation", "exception"):
        first = f.oldest.get(kind)
        oldest[kind] = f"{f.open_counts.get(kind, 0)}" + (
            f" (oldest {_age(d.as_of, first[0].created_at)})" if first else "")
    return [
        ("Opened", _flow(f.opened)),
        ("Resolved", _flow(f.resolved)),
        ("MTTA", _speed(s, f.mtta)),
        ("MTTR", _speed(s, f.mttr)),
        ("SLA attainment", _attainment(f)),
        ("Breaches", f"{f.breach_count} · {money(f.breach_arr)} ARR touched\n"
                     f"week: {sum(o.breached for o in f.attainment.get(WEEK, {}).values())}"),
        ("At risk", f"{f.at_risk_count} accounts · {money(f.at_risk_arr)} ARR"),
        ("Still open", f"escalations {oldest['escalation']}\nexceptions {oldest['exception']}"),
        ("Feedback loops", f"{f.loops_open} open on {f.loops_items} items\n"
                           f"{f.loops_resolved} on resolved items"),
        ("Remediation", _remediation(f)),
        *customer_fields(f.customers),
    ]


def sections(d: Digest, s: Style) -> list[str]:
    f, out = d.figures, []
    severities = sorted({sev for period in (f.opened, f.resolved) for counts in period.values()
                         for (kind, sev) in counts if kind == "incident"})
    if severities:
        week_start = d.day - timedelta(days=6)
        rows = []
        for sev in severities:
            row = (f"{sev} opened {f.opened.get(DAY, {}).get(('incident', sev), 0)}"
                   f" (week {f.opened.get(WEEK, {}).get(('incident', sev), 0)}) · resolved "
                   f"{f.resolved.get(DAY, {}).get(('incident', sev), 0)}"
                   f" (week {f.resolved.get(WEEK, {}).get(('incident', sev), 0)})")
            points = d.by_severity.get(sev, [])
            day = _mean([p for p in points if p.day == d.day])
            week = _mean([p for p in points if p.day >= week_start])
            if week is not None:
                row += f" · MTTR {span(day)} (week {span(week)})"
            if sev in d.targets:
                row += f" · target {span(d.targets[sev])}"
            rows.append(row)
        out.append(s.bold("Incidents by severity") + "\n" + "\n".join(f"• {r}" for r in rows))
    if f.breaches:
        rows = []
        for b in f.breaches:
            who = ", ".join(f"{s.text(t.name)} ({money(t.arr)})" for t in b.tenants) or "no account named"
            rows.append(f"• {b.ref} {b.severity} missed {b.target}: {s.text(b.title)} — {who}")
        more = f.breach_count - len(f.breaches)
        out.append(s.bold("Breaches") + "\n" + "\n".join(rows) + (f"\n… and {more} more" if more > 0 else ""))
    if f.at_risk:
        rows = [f"• {s.text(a.name)} — {money(a.arr)} ARR · renews "
                f"{a.renewal.isoformat() if a.renewal else '—'}"
                + (f" (in {(a.renewal - d.as_of.date()).days}d)" if a.renewal else "")
                + f" · score {a.score}"
                + (f" · {a.availability.brief()}" if a.availability else "") for a in f.at_risk]
        more = f.at_risk_count - len(f.at_risk)
        out.append(s.bold("At-risk accounts") + "\n" + "\n".join(rows)
                   + (f"\n… and {more} more" if more > 0 else ""))
    aging = [item for kind in ("escalation", "exception") for item in f.oldest.get(kind, [])[:3]]
    if aging:
        rows = [f"• {i.ref} {i.state} for {_age(d.as_of, i.created_at)}: {s.text(i.title)}" for i in aging]
        out.append(s.bold("Oldest open escalations and exceptions") + "\n" + "\n".join(rows))
    reviews = _reviews(d, s)
    if reviews:
        out.append(s.bold("Reviews and follow-ups") + "\n" + reviews)
    out.append(s.bold("Resolution times, statistically") + "\n" + control_text(d.control))
    return out


def _reviews(d: Digest, s: Style) -> str:
    r, rows = d.figures.reviews, []
    for late in r.reviews_overdue:
        rows.append(f"• review of {late.ref} overdue by {_age(d.as_of, late.due_at)} ({s.user(late.owner)}): "
                    f"{s.text(late.what)}")
    if r.reviews_overdue_count > len(r.reviews_overdue):
        rows.append(f"… and {r.reviews_overdue_count - len(r.reviews_overdue)} more overdue reviews")
    for late in r.followups_overdue:
        rows.append(f"• {late.ref} overdue by {_age(d.as_of, late.due_at)} ({s.user(late.owner)}): "
                    f"{s.text(late.what)}")
    if r.followups_overdue_count > len(r.followups_overdue):
        rows.append(f"… and {r.followups_overdue_count - len(r.followups_overdue)} more overdue follow-ups")
    rows += [f"• ♻️ {ref} {words}: {s.text(title)}" for ref, title, words in r.recurrences]
    return "\n".join(rows)


def _mean(points: list[Point]) -> float | None:
    n = sum(p.count for p in points)
    return sum(p.value * p.count for p in points) / n if n else None


def _mttr(points: list[Point]) -> str:
    n = sum(p.count for p in points)
    return f"MTTR {span(_mean(points))} ({n} resolved on {len(points)} day(s))"


def control_text(c: Control) -> str:
    this_week = (f"this week's incident {_mttr(c.current)}" if c.current
                 else "no incident was resolved this week")
    if c.unjudged == "history":
        since = f" (the record starts {c.history_from.isoformat()})" if c.history_from else ""
        return (f"Fewer than four weeks of history{since}: no control limits yet, rather than limits "
                f"from nothing; {this_week}. Import past incidents with `opsloop history import`.")
    if not c.judged:
        return (f"Not enough history: {len(c.trailing)} day(s) with resolved incidents in the trailing "
                f"weeks; the limits need at least 2. {this_week[0].upper()}{this_week[1:]}.")
    assert c.centre is not None and c.upper is not None and c.lower is not None and c.mr_bar is not None
    limits = (f"the four weeks before: {_mttr(c.trailing)}, daily XmR centre {span(c.centre)}, "
              f"limits {span(c.lower)} to {span(c.upper)} (MR̄ {span(c.mr_bar)})")
    if not c.beyond:
        return f"In control: {this_week}, every day within the limits; {limits}."
    days = ", ".join(f"{p.day.strftime('%a %d %b')} {span(p.value)}" for p in c.beyond)
    return (f"Out of control: {len(c.beyond)} day(s) of this week beyond a limit ({days}); "
            f"{this_week}; {limits}.")


def context(d: Digest, *, chart: str | None = "Chart in the thread.") -> str:
    """The footnote; `chart` says where the chart is (None: nowhere, so nothing is promised)."""
    past = ("" if d.as_of == d.built_at else
            f" Open items, at-risk accounts and loops as of the end of {d.day.isoformat()}; "
            "calls awaiting approval as of now.")
    return (f"Days are local ({d.zone}); the week is the 7 days ending {d.day.isoformat()}. MTTA / MTTR "
            "are means over items acknowledged / resolved in the period; a target is the mean SLA target "
            f"of the same items.{past} Built {d.built_at.strftime('%Y-%m-%d %H:%M')} UTC."
            + (f" {chart}" if chart else ""))


def message(d: Digest) -> Message:
    return Message(text=headline(d), fields=fields(d, MRKDWN), body="\n\n".join(sections(d, MRKDWN)),
                   context=context(d))


def text(d: Digest, *, chart: str | None = None) -> str:
    """Plain text (`opsloop digest --print`); `chart` names the file the chart was written to, if any."""
    lines = [headline(d), ""]
    for label, value in fields(d, PLAIN):
        first, *rest = value.split("\n")
        lines.append(f"{label + ':':<16}{first}")
        lines += [f"{'':<16}{line}" for line in rest]
    where = f"Chart: {chart}" if chart else None
    return "\n".join([*lines, "", "\n\n".join(sections(d, PLAIN)), "", context(d, chart=where)])
