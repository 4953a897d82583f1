"""The health report and the calibration in words: Slack mrkdwn or plain text, from the same lines."""

from __future__ import annotations

from collections.abc import Callable

from opsloop.health.calibrate import Calibration
from opsloop.health.models import PLAY_OUTCOMES
from opsloop.health.outcomes import ALL, Retention
from opsloop.health.report import HORIZONS, HealthReport, Share
from opsloop.health.score import BANDS
from opsloop.messages import Message
from opsloop.types import Tier

Bold = Callable[[str], str]


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _retention(r: Retention | None) -> str:
    if r is None or not r.renewals:
        return "no renewals"
    return (f"NRR {percent(r.nrr)} · gross {percent(r.grr)} · {r.renewals} renewal{'s' * (r.renewals != 1)}, "
            f"${r.arr_before:,} up → ${r.arr_after:,}")


def _share(share: Share, report: HealthReport, word: str) -> str:
    if not report.enough(share.n):
        return f"not enough data ({share.n})"
    return f"{percent(share.rate)} {word} ({share.hits}/{share.n})"


def report_lines(report: HealthReport, bold: Bold) -> list[str]:
    r = report.retention
    lines = [bold("Retention, last 12 months") + f" (renewals dated up to {report.today.isoformat()})",
             f"• all: {_retention(r.get((ALL, ALL)))}"]
    lines += [f"• {tier}: {_retention(r[(tier, ALL)])}" for tier in map(str, Tier) if (tier, ALL) in r]
    quarters = sorted({q for tier, q in r if tier == ALL and q != ALL})
    lines += [f"• {q}: {_retention(r[(ALL, q)])}" for q in quarters]
    lines += ["", bold("Does the score see churn coming?") + " Churned or contracted against renewed or "
              "expanded, by the score N days before the renewal (ROC AUC: 1.0 perfect, 0.5 a coin)"]
    for s in report.separation:
        if s.auc is None:
            why = f"{s.n} outcomes with a score, {s.lost} lost; needs {report.min_outcomes} and both kinds"
            lines.append(f"• {s.days} days before: not enough data ({why})")
        else:
            lines.append(f"• {s.days} days before: AUC {s.auc:.2f} over {s.n} renewals ({s.lost} lost)")
    lines += ["", bold("Share lost by band") + " (" + " / ".join(f"{d} days" for d in HORIZONS) + " before)"]
    for band in BANDS:
        shares = " · ".join(_share(report.bands[band][d], report, "lost") for d in HORIZONS)
        lines.append(f"• {band}: {shares}")
    lines += ["", bold("Interventions by playbook") + " (renewals kept after the last prompt of the year "
              "before: taken, or snoozed / dismissed; and the outcomes recorded when plays closed)"]
    if not report.playbooks:
        lines.append("• no prompt or play preceded a known renewal yet")
    for p in report.playbooks:
        closed = " · ".join(f"{p.closed[o]} {o}" for o in PLAY_OUTCOMES if p.closed.get(o)) or "none closed"
        lines.append(f"• {p.playbook}: taken {_share(p.taken, report, 'kept')} · snoozed or dismissed "
                     f"{_share(p.untaken, report, 'kept')} · plays: {closed}")
    lines.append(f"_Below {report.min_outcomes} outcomes (health.min_outcomes) a figure says not enough "
                 f"data; {report.known} renewal outcomes are known._")
    return lines


def report_message(report: HealthReport) -> Message:
    body = "\n".join(report_lines(report, lambda s: f"*{s}*"))
    return Message(text=f"📈 Customer health report, {report.today.isoformat()}", body=body[:11_000])


def report_text(report: HealthReport) -> str:
    lines = [line[1:-1] if line.startswith("_") and line.endswith("_") else line  # italics: mrkdwn only
             for line in report_lines(report, lambda s: s)]
    return "\n".join([f"Customer health report, {report.today.isoformat()}", "", *lines])


def calibration_text(c: Calibration) -> str:
    def auc(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    w = c.weights
    sev = ", ".join(f"{k}: {v:g}" for k, v in w.incidents.items())
    lines = [
        f"Calibration on {c.n} renewal outcomes with a score {c.days} days before ({c.lost} churned or "
        f"contracted): fitted on {c.fitted}, checked on {c.held_out} held out.",
        f"Held-out ROC AUC: current weights {auc(c.auc_current)} -> proposed {auc(c.auc_proposed)}",
        "",
        "Proposed weights (nothing was changed; to adopt them, edit health.weights in the policy file):",
        "health:",
        "  weights:",
        f"    incidents: {{{sev}}}",
        *(f"    {name}: {getattr(w, name):g}" for name in
          ("sla_breaches", "open_escalations", "open_exceptions", "usage", "nps", "tickets")),
        "",
        f"{'unit':<20}{'per unit (log-odds)':>20}{'current':>10}{'proposed':>10}",
        *(f"{t.unit:<20}{t.coefficient:>20.3f}{t.current:>10g}{t.proposed:>10g}"
          + (f"  {t.note}" if t.note else "") for t in c.terms),
    ]
    return "\n".join(lines)
