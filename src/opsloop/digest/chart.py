"""The digest's chart: daily MTTR with the XmR limits, and each severity against its own target, as PNG.

The first panel is the statistical verdict: every incident's daily MTTR with
the limits of the trailing weeks. Mixing severities there is right (it is the
team's resolution process), but a target line there would be a blend of a 1 h
and a 4 h target that means nothing; so each severity with resolved incidents
in the charted weeks gets a panel of its own, with its own target (the SLA
policy's resolution target for that severity).

Drawn with matplotlib's object API on an Agg canvas, never pyplot: no display,
no global figure state, so the scheduler thread and a command may draw at once.
A long-running server draws it in a child process instead (`drawn_apart`):
matplotlib and numpy (about 45 MB resident) would otherwise stay in its heap
for good after the first digest, for a picture drawn once a day.
"""

from __future__ import annotations

import io
import multiprocessing
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from opsloop.digest.control import Control, Point

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HOUR = 3600.0
TRAILING, CURRENT, BEYOND = "#8d99ae", "#1d3557", "#e63946"
SEVERITY_COLOURS = {"sev1": "#d62828", "sev2": "#f77f00", "sev3": "#2a9d8f", "sev4": "#577590"}


def mttr_chart(control: Control, by_severity: dict[str, list[Point]], *, targets: dict[str, float],
               first: date, last: date) -> bytes:
    """A PNG: the pooled daily MTTR with its limits, then one panel per severity with data."""
    # matplotlib (~40 MB with numpy) is loaded when a chart is first drawn, not when the bot starts
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    severities = [s for s, points in by_severity.items() if points]
    figure = Figure(figsize=(8, 2.6 + 1.9 * len(severities)), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(1 + len(severities), 1, sharex=True, squeeze=False)
    axes = [row[0] for row in grid]
    week_start = last - timedelta(days=6)

    def xy(points: list[Point]) -> tuple[list[int], list[float]]:
        return [(p.day - first).days for p in points], [p.value / HOUR for p in points]

    top = axes[0]
    points = control.trailing + control.current
    if points:
        top.plot(*xy(points), color=TRAILING, linewidth=1, zorder=1)
    top.scatter(*xy(control.trailing), color=TRAILING, s=14, label="trailing weeks", zorder=2)
    beyond = {p.day for p in control.beyond}
    top.scatter(*xy([p for p in control.current if p.day not in beyond]), color=CURRENT, s=22,
                label="this week", zorder=3)
    if control.beyond:
        top.scatter(*xy(control.beyond), color=BEYOND, s=30, label="beyond a limit", zorder=4)
    if control.centre is not None and control.upper is not None and control.lower is not None:
        top.axhline(control.centre / HOUR, color="#457b9d", linewidth=1, label="centre")
        top.axhline(control.upper / HOUR, color="#e76f51", linestyle="--", linewidth=1, label="limits")
        top.axhline(control.lower / HOUR, color="#e76f51", linestyle="--", linewidth=1)
    top.set_title(f"Daily incident MTTR to {last.isoformat()}: " + _verdict(control), fontsize=10)
    if not points:
        top.text(0.5, 0.5, "no incident resolved in these five weeks", transform=top.transAxes,
                 ha="center", va="center", fontsize=9, color="#6c757d")

    for ax, severity in zip(axes[1:], severities, strict=True):
        colour = SEVERITY_COLOURS.get(severity, CURRENT)
        mine = by_severity[severity]
        ax.plot(*xy(mine), color=colour, linewidth=1, alpha=0.5, zorder=1)
        ax.scatter(*xy([p for p in mine if p.day < week_start]), color=colour, s=12, alpha=0.5, zorder=2)
        recent = [p for p in mine if p.day >= week_start]
        ax.scatter(*xy(recent), color=colour, s=24, zorder=3,
                   label=f"{severity} this week" if recent else None)
        target = targets.get(severity)
        if target is not None:
            ax.axhline(target / HOUR, color=colour, linestyle=":", linewidth=1.5,
                       label=f"{severity} target {_hours(target)}")
        ax.set_title(f"{severity}: daily MTTR" + ("" if target is None else " against its resolution target"),
                     fontsize=9)

    span = (last - first).days
    ticks = [t + span % 7 for t in range(0, span + 1, 7)]  # one a week, ending on the reported day
    for ax in axes:
        _frame(ax)
        ax.axvspan((week_start - first).days - 0.5, span + 0.5, color="#edf2f4", zorder=0)
    axes[-1].set_xticks(ticks, [(first + timedelta(days=t)).strftime("%d %b") for t in ticks], fontsize=8)
    axes[-1].set_xlim(-0.5, span + 0.5)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


DEADLINE = 120.0  # seconds a child process may take to start, import matplotlib and draw


def drawn_apart(*args: Any, **kwargs: Any) -> bytes:
    """`mttr_chart(*args, **kwargs)` drawn in a child process (spawned: no threads or locks of the
    server are copied), ended after `DEADLINE` seconds at the latest; its error is raised here."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # leaving terminates the child
        drawn: bytes = pool.apply_async(mttr_chart, args, kwargs).get(timeout=DEADLINE)
        return drawn


def _frame(ax: Axes) -> None:
    ax.set_ylabel("hours", fontsize=8)
    ax.set_ylim(0, max(ax.get_ylim()[1], 0.1) * 1.12)  # room above a target or limit line
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")


def _verdict(control: Control) -> str:
    if control.unjudged == "history":
        return "fewer than four weeks of history, no limits yet"
    if control.unjudged == "points":
        return "too few trailing days for limits"
    return "out of control" if control.beyond else "in control"


def _hours(seconds: float) -> str:
    hours = seconds / HOUR
    return f"{hours:g}h" if hours >= 1 else f"{seconds / 60:g}m"
