"""Is this week's resolution time out of statistical control? An XmR (individuals) chart.

The points are daily MTTRs (one per day that resolved something). From the
trailing weeks' points: the centre line is their mean, MR̄ the mean of their
moving ranges (|x_i - x_{i-1}| between consecutive points), and the natural
process limits are centre ± 2.66·MR̄ (2.66 = 3 / d2, d2 = 1.128 for ranges of
two). A resolution time cannot go below zero, so the lower limit is at least 0.
The rule applied: a point of this week beyond either limit means the process
changed (a signal, not noise) — worse above the upper limit, better below the lower.

Limits drawn from nothing mislead: when the record starts less than four weeks
before this week (a new install, before its history was imported), or the
trailing weeks hold fewer than two points, no limits are drawn and the digest
says which of the two it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from statistics import mean
from typing import Literal

SCALE = 2.66
MIN_POINTS = 2  # a moving range needs two points; fewer and no limits are drawn


@dataclass(frozen=True)
class Point:
    day: date
    value: float  # MTTR that day, seconds
    count: int  # resolutions behind it


@dataclass(frozen=True)
class Control:
    trailing: list[Point]
    current: list[Point]  # this week's points
    centre: float | None = None
    mr_bar: float | None = None
    upper: float | None = None
    lower: float | None = None
    beyond: list[Point] = field(default_factory=list)  # this week's points outside the limits
    # why there are no limits: the record is younger than the trailing weeks, or too few points
    unjudged: Literal["history", "points"] | None = None
    history_from: date | None = None  # the record's first day, when it was too young

    @property
    def judged(self) -> bool:
        return self.centre is not None

    @property
    def in_control(self) -> bool | None:
        return None if not self.judged else not self.beyond


def individuals(trailing: list[Point], current: list[Point], *, history_from: date | None = None,
                needed_from: date | None = None) -> Control:
    """The XmR limits from `trailing` and this week's points judged against them.

    With `needed_from` (the first trailing day), limits are drawn only when the record
    (`history_from`, its first day) reaches back that far."""
    if needed_from is not None and (history_from is None or history_from > needed_from):
        return Control(trailing, current, unjudged="history", history_from=history_from)
    if len(trailing) < MIN_POINTS:
        return Control(trailing, current, unjudged="points")
    values = [p.value for p in trailing]
    centre = mean(values)
    mr_bar = mean(abs(b - a) for a, b in pairwise(values))
    upper = centre + SCALE * mr_bar
    lower = max(0.0, centre - SCALE * mr_bar)
    beyond = [p for p in current if p.value > upper or p.value < lower]
    return Control(trailing, current, centre, mr_bar, upper, lower, beyond)
