"""The digest's chart: daily MTTR with the XmR limits and the target, as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas, never pyplot: no display,
no global figure state, so the scheduler thread and a command may draw at once.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from opsloop.digest.control import Control, Point

HOUR = 3600.0


def mttr_chart(control: Control, *, target: float | None, title: str, first: date, last: date) -> bytes:
    """A PNG: the trailing weeks' points in grey, this week's in blue (red beyond a limit),
    the centre line, the natural process limits and the target (all in hours)."""
    figure = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()

    def xy(points: list[Point]) -> tuple[list[int], list[float]]:
        return [(p.day - first).days for p in points], [p.value / HOUR for p in points]

    points = control.trailing + control.current
    if points:
        axes.plot(*xy(points), color="#8d99ae", linewidth=1, zorder=1)
    axes.scatter(*xy(control.trailing), color="#8d99ae", s=14, label="trailing weeks", zorder=2)
    beyond = {p.day for p in control.beyond}
    inside = [p for p in control.current if p.day not in beyond]
    axes.scatter(*xy(inside), color="#1d3557", s=22, label="this week", zorder=3)
    if control.beyond:
        axes.scatter(*xy(control.beyond), color="#e63946", s=30, label="beyond a limit", zorder=4)
    ticks = list(range(0, (last - first).days + 1, 7))  # one a week, ending on the reported day
    ticks = [t + (last - first).days % 7 for t in ticks]
    axes.set_xticks(ticks, [(first + timedelta(days=t)).strftime("%d %b") for t in ticks], fontsize=8)
    axes.set_xlim(-0.5, (last - first).days + 0.5)
    if control.centre is not None and control.upper is not None and control.lower is not None:
        axes.axhline(control.centre / HOUR, color="#457b9d", linewidth=1, label="centre")
        axes.axhline(control.upper / HOUR, color="#e76f51", linestyle="--", linewidth=1, label="limits")
        axes.axhline(control.lower / HOUR, color="#e76f51", linestyle="--", linewidth=1)
    if target is not None:
        axes.axhline(target / HOUR, color="#2a9d8f", linestyle=":", linewidth=1.5, label="target")
    axes.set_title(title, fontsize=10)
    axes.set_ylabel("MTTR (hours)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

