"""`opsloop health calibrate`: factor weights fitted on the known outcomes, proposed, never applied.

The score is 100 minus the sum of weight x unit over the factors (`opsloop.health.score.units`),
so a logistic regression of "lost" (churned or contracted) on the units N days before each
renewal has coefficients in the same shape as the weights. The units are standardised before an
L2-regularised fit (so the penalty treats a count and a 0..1 trend alike) and the coefficients
turned back into per-unit terms; a factor whose coefficient says it goes with renewal rather than
churn is proposed at 0, one that never varied in the data keeps its current weight. The proposal
is scaled so the mean points taken off over the fitted outcomes stay what the current weights take,
which keeps the bands meaningful.

The outcomes are split, stratified and seeded, into a part to fit and a held-out part; the AUC
of the current and of the proposed weights is measured on the held-out part only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from sqlmodel import Session

from opsloop.health import evidence
from opsloop.health.config import Weights
from opsloop.health.models import LOST
from opsloop.health.report import auc
from opsloop.health.score import UNITS, score_of, weight_of
from opsloop.types import Severity

if TYPE_CHECKING:
    import numpy as np

HELD_OUT = 0.3
SEED = 7


@dataclass(frozen=True)
class Term:
    unit: str
    coefficient: float  # change in the log-odds of loss per unit
    current: float
    proposed: float
    note: str = ""


@dataclass(frozen=True)
class Calibration:
    days: int
    n: int
    lost: int
    fitted: int
    held_out: int
    auc_current: float | None
    auc_proposed: float | None
    terms: list[Term]
    weights: Weights


class NotEnoughData(Exception):
    """Too few outcomes with a score that many days before to fit anything; says how many."""


def calibrate(session: Session, weights: Weights, *, today: date, days: int,
              min_outcomes: int) -> Calibration:
    known = evidence.known(session, until=today)
    before = evidence.scores_before(session, days, units=True)
    rows = [(o.outcome in LOST, before[o.id].units) for o in known if o.id in before]
    lost = sum(is_lost for is_lost, _ in rows)
    kept = len(rows) - lost
    if min(lost, kept) < min_outcomes:
        raise NotEnoughData(f"{len(rows)} renewal outcomes have a score {days} days before ({lost} lost, "
                            f"{kept} kept); calibration needs at least {min_outcomes} of each "
                            "(health.min_outcomes)")
    # numpy and scikit-learn (~100 MB) are loaded here, not when the bot starts: only calibration and
    # the health report use them
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x = np.array([[amounts.get(unit, 0.0) for unit in UNITS] for _, amounts in rows])
    y = np.array([is_lost for is_lost, _ in rows])
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=HELD_OUT, stratify=y, random_state=SEED)
    spread = x_fit.std(axis=0)
    varies = spread > 1e-9
    scale = np.where(varies, spread, 1.0)
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit((x_fit - x_fit.mean(axis=0)) / scale, y_fit)
    per_unit = model.coef_[0] / scale
    current = np.array([weight_of(weights, unit) for unit in UNITS])
    raw = np.where(varies, np.clip(per_unit, 0.0, None), 0.0)
    taken_now = float((x_fit * current).sum(axis=1).mean())
    taken_raw = float((x_fit * raw).sum(axis=1).mean())
    factor = taken_now / taken_raw if taken_raw > 0 else 0.0
    proposed = np.where(varies, np.clip(raw * factor, 0.0, 100.0), current)
    terms = []
    for i, unit in enumerate(UNITS):
        note = ("never varied in these outcomes: kept" if not varies[i]
                else "goes with renewal, not churn: 0" if per_unit[i] <= 0 else "")
        terms.append(Term(unit, float(per_unit[i]), float(current[i]), round(float(proposed[i]), 1), note))
    new = _weights({t.unit: t.proposed for t in terms})
    return Calibration(
        days=days, n=len(rows), lost=lost, fitted=len(y_fit), held_out=len(y_test),
        auc_current=auc(list(map(bool, y_test)), [score_of(_amounts(r), weights) for r in x_test]),
        auc_proposed=auc(list(map(bool, y_test)), [score_of(_amounts(r), new) for r in x_test]),
        terms=terms, weights=new)


def _amounts(row: np.ndarray) -> dict[str, float]:
    return {unit: float(value) for unit, value in zip(UNITS, row, strict=True)}


def _weights(values: dict[str, float]) -> Weights:
    incidents = {sev: values[f"incidents.{sev}"] for sev in Severity}
    rest = {unit: value for unit, value in values.items() if not unit.startswith("incidents.")}
    return Weights.model_validate({"incidents": incidents, **rest})
