"""Does the score work? Retention, the score's power to tell churn coming, and which plays help.

Over the renewal outcomes known (`opsloop accounts outcomes`, renewal signals):
- retention: NRR and gross retention per tier and per quarter, over the last 12 months;
- separation: how well the score N days before each renewal (N = 30, 60, 90; from the daily
  series) told the renewals that were lost (churned or contracted) from those kept (renewed or
  expanded): ROC AUC (1.0 a perfect ranking, 0.5 a coin), and the share lost per band;
- interventions, per playbook: what became of the renewals after a prompt that was taken (a
  play) against one snoozed or dismissed, and the outcomes CSMs recorded when closing plays.

Every figure below `health.min_outcomes` outcomes says "not enough data" instead of a number.
The core returns this data; `opsloop.health.present` words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlmodel import Session, col, func, select

from opsloop.health import evidence, outcomes
from opsloop.health.models import LOST, TAKEN, HealthPlay
from opsloop.health.score import BANDS

HORIZONS = (30, 60, 90)  # days before the renewal
UNTAKEN = ("snoozed", "dismissed")
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Separation:
    days: int
    n: int  # outcomes with a score that many days before
    lost: int
    auc: float | None  # None: not enough data


@dataclass(frozen=True)
class Share:
    n: int
    hits: int  # lost (bands) or kept (interventions)

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None


@dataclass
class PlaybookFigures:
    playbook: str
    taken: Share = Share(0, 0)  # renewals after a play or a taken prompt: how many were kept
    untaken: Share = Share(0, 0)  # after a prompt snoozed or dismissed
    closed: dict[str, int] = field(default_factory=dict)  # plays closed, by the outcome recorded


@dataclass
class HealthReport:
    today: date
    min_outcomes: int
    known: int  # renewal outcomes up to today
    retention: dict[tuple[str, str], outcomes.Retention]  # (tier | all, quarter | all), last 12 months
    separation: list[Separation]
    bands: dict[str, dict[int, Share]]  # band -> days -> share lost
    playbooks: list[PlaybookFigures]

    def enough(self, n: int) -> bool:
        return n >= self.min_outcomes


def auc(lost: list[bool], scores: list[int]) -> float | None:
    """ROC AUC of the score as a predictor of loss (a lower score should mean more risk)."""
    if not any(lost) or all(lost):
        return None
    # scikit-learn (with numpy and scipy, ~100 MB) is loaded by the report and calibration only, so the
    # bot, the shell and the rollout worker never carry it
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(lost, [-s for s in scores])), 6)


def build(session: Session, *, today: date, min_outcomes: int) -> HealthReport:
    known = evidence.known(session, until=today)
    report = HealthReport(today=today, min_outcomes=min_outcomes, known=len(known),
                          retention=outcomes.retention(session, since=today - YEAR, until=today),
                          separation=[], bands={band: {} for band in BANDS}, playbooks=[])
    for days in HORIZONS:
        before = evidence.scores_before(session, days)
        scored = [(o.outcome in LOST, before[o.id]) for o in known if o.id in before]
        lost = [is_lost for is_lost, _ in scored]
        value = auc(lost, [b.score for _, b in scored]) if len(scored) >= min_outcomes else None
        report.separation.append(Separation(days, len(scored), sum(lost), value))
        for band in BANDS:
            in_band = [is_lost for is_lost, b in scored if b.band == band]
            report.bands[band][days] = Share(len(in_band), sum(in_band))
    report.playbooks = _playbooks(session, known)
    return report


def _playbooks(session: Session, known: list[evidence.Known]) -> list[PlaybookFigures]:
    by_book: dict[str, PlaybookFigures] = {}
    steps = evidence.interventions(session, known)
    for o in known:
        step = steps.get(o.id)
        if step is None or step.playbook is None:
            continue
        figures = by_book.setdefault(step.playbook, PlaybookFigures(step.playbook))
        kept = int(o.outcome not in LOST)
        if step.answer == TAKEN:
            figures.taken = Share(figures.taken.n + 1, figures.taken.hits + kept)
        elif step.answer in UNTAKEN:
            figures.untaken = Share(figures.untaken.n + 1, figures.untaken.hits + kept)
    for playbook, outcome, count in session.exec(
            select(HealthPlay.playbook_id, HealthPlay.outcome, func.count())
            .where(col(HealthPlay.closed_at).is_not(None))
            .group_by(col(HealthPlay.playbook_id), col(HealthPlay.outcome))):
        figures = by_book.setdefault(playbook, PlaybookFigures(playbook))
        figures.closed[str(outcome)] = int(count)
    return [by_book[name] for name in sorted(by_book)]
