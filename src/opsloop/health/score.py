"""The health score: 100 minus the points each factor takes off, then a band per tier.

Pure arithmetic on `Inputs` (gathered by `opsloop.health.inputs` with SQL
aggregations), so it is tested by hand-computed examples. Points per factor,
with the weights `w` of the policy's `health.weights`:

- incidents:        sum over severities of w[sev] x incidents touching the tenant in the window
- sla_breaches:     w x missed SLA targets (settled as breached in the window) on its items
- open_escalations: w x escalations open now;  open_exceptions: w x exceptions requested/approved
- usage:            w x max(0, -trend)          (trend -1..+1, the newest in the window)
- nps:              w x (100 - nps) / 200       (0 at +100, w/2 at 0, w at -100; the newest)
- tickets:          w x max(0, recent - before) (tickets a day: mean of the last `recent` days
                    against the mean of the rest of the window; no earlier data, no rise)

score = 100 - the sum, rounded half up and kept within 0..100. A score at or
above the tier's `watch` is healthy, below its `at_risk` at-risk, watch in
between. A rule that fires (the renewal rule) makes the account at-risk
whatever the score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from opsloop.health.config import FACTORS, HealthPolicy, Weights
from opsloop.messages import escape
from opsloop.types import Severity

HEALTHY, WATCH, AT_RISK = "healthy", "watch", "at-risk"
BANDS = (HEALTHY, WATCH, AT_RISK)  # best to worst
_SEVERITIES = tuple(str(sev) for sev in Severity)  # plain text: an enum's `.value` is slow in a hot loop
# the amounts a weight multiplies: points = sum of weight x unit (see `units`)
UNITS = (*(f"incidents.{sev}" for sev in _SEVERITIES), "sla_breaches", "open_escalations",
         "open_exceptions", "usage", "nps", "tickets")


@dataclass(frozen=True)
class ItemRef:
    ref: str
    severity: str
    title: str = ""


@dataclass
class Inputs:
    """What the score is computed from, for one tenant."""

    incidents: dict[str, int] = field(default_factory=dict)  # severity -> incidents in the window
    incident_refs: list[ItemRef] = field(default_factory=list)  # the worst few, worst first
    breaches: int = 0
    breach_refs: list[str] = field(default_factory=list)  # "INC-3 response"
    open_escalations: int = 0
    escalation_refs: list[str] = field(default_factory=list)
    open_exceptions: int = 0
    exception_refs: list[str] = field(default_factory=list)
    usage: float | None = None
    nps: float | None = None
    tickets_recent: float | None = None
    tickets_before: float | None = None


class AccountFacts(NamedTuple):
    """What scoring reads of an account (a row of the accounts table)."""

    id: str
    name: str
    tier: str
    arr: int = 0
    renewal_date: date | None = None
    csm: str | None = None


@dataclass(frozen=True)
class Factor:
    name: str
    points: float  # taken off the score
    evidence: str  # what a CSM reads (Slack mrkdwn, user text escaped)
    value: float | None = None  # the signal's value, or the count, for "moved from ... to ..."


@dataclass(frozen=True)
class RuleHit:
    name: str
    evidence: str


@dataclass(frozen=True)
class Assessment:
    score: int
    band: str
    factors: list[Factor]
    rules: list[RuleHit] = field(default_factory=list)
    units: dict[str, float] = field(default_factory=dict)  # see `units`; kept in the daily series

    def reasons(self) -> list[str]:
        """Rule names, then the factors that took points off, most points first."""
        hurting = sorted((f for f in self.factors if f.points > 0), key=lambda f: -f.points)
        return [r.name for r in self.rules] + [f.name for f in hurting]

    def factor(self, name: str) -> Factor | None:
        return next((f for f in self.factors if f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "factors": {f.name: {"points": f.points, "evidence": f.evidence, "value": f.value}
                        for f in self.factors},
            "rules": [{"name": r.name, "evidence": r.evidence} for r in self.rules],
            "units": self.units,
        }

    @classmethod
    def from_json(cls, score: int, band: str, data: dict[str, Any]) -> Assessment:
        factors = [Factor(name, float(f["points"]), str(f["evidence"]), f.get("value"))
                   for name, f in data.get("factors", {}).items()]
        rules = [RuleHit(str(r["name"]), str(r["evidence"])) for r in data.get("rules", [])]
        return cls(score, band, factors, rules, dict(data.get("units", {})))


def assess(inputs: Inputs, account: AccountFacts, config: HealthPolicy, *, today: date) -> Assessment:
    w = config.weights
    days = _days(config.window.total_seconds())
    factors = [
        _incidents(inputs, config, days),
        Factor("sla_breaches", w.sla_breaches * inputs.breaches,
               _listed(inputs.breaches, "missed target", inputs.breach_refs, days), inputs.breaches),
        Factor("open_escalations", w.open_escalations * inputs.open_escalations,
               _listed(inputs.open_escalations, "open escalation", inputs.escalation_refs),
               inputs.open_escalations),
        Factor("open_exceptions", w.open_exceptions * inputs.open_exceptions,
               _listed(inputs.open_exceptions, "open exception", inputs.exception_refs),
               inputs.open_exceptions),
        _usage(inputs.usage, w.usage),
        _nps(inputs.nps, w.nps),
        _tickets(inputs, w.tickets, _days(config.recent.total_seconds())),
    ]
    assert [f.name for f in factors] == list(FACTORS)
    total = sum(f.points for f in factors)
    score = min(100, max(0, math.floor(100 - total + 0.5)))
    rules = [hit for hit in [_renewal(inputs, account, config, today)] if hit is not None]
    return Assessment(score, band_of(score, account.tier, config, ruled=bool(rules)),
                      [Factor(f.name, round(f.points, 2), f.evidence, f.value) for f in factors], rules,
                      units(inputs))


def units(inputs: Inputs) -> dict[str, float]:
    """What each weight multiplies: counts, usage decline (0..1), NPS shortfall (0..1), ticket rise.

    `sum(weight[u] * units[u])` is exactly the points the factors take off (before rounding),
    so weights can be fitted on these (`opsloop health calibrate`)."""
    out = {f"incidents.{sev}": float(inputs.incidents.get(sev, 0)) for sev in _SEVERITIES}
    out["sla_breaches"] = float(inputs.breaches)
    out["open_escalations"] = float(inputs.open_escalations)
    out["open_exceptions"] = float(inputs.open_exceptions)
    out["usage"] = 0.0 if inputs.usage is None else max(0.0, -inputs.usage)
    out["nps"] = 0.0 if inputs.nps is None else (100 - inputs.nps) / 200
    rise = (0.0 if inputs.tickets_recent is None or inputs.tickets_before is None
            else max(0.0, inputs.tickets_recent - inputs.tickets_before))
    out["tickets"] = rise
    return {name: round(value, 4) for name, value in out.items()}


def weight_of(weights: Weights, unit: str) -> float:
    """The policy weight that multiplies `unit` (`incidents.sev1` -> weights.incidents[sev1])."""
    kind, _, sev = unit.partition(".")
    if kind == "incidents":
        return float(weights.incidents.get(Severity(sev), 0))
    return float(getattr(weights, kind))


def score_of(amounts: dict[str, float], weights: Weights) -> int:
    """The score the factors' units give under `weights` (rules aside), rounded like `assess`."""
    total = sum(weight_of(weights, unit) * amounts.get(unit, 0.0) for unit in UNITS)
    return min(100, max(0, math.floor(100 - total + 0.5)))


def band_of(score: int, tier: str, config: HealthPolicy, *, ruled: bool = False) -> str:
    band = config.band(tier)
    if ruled or score < band.at_risk:
        return AT_RISK
    return HEALTHY if score >= band.watch else WATCH


# --------------------------------------------------------------------------- factors


def _incidents(inputs: Inputs, config: HealthPolicy, days: str) -> Factor:
    weights = _by_value(config.weights)
    points = sum(weights.get(sev, 0) * n for sev, n in inputs.incidents.items())
    count = sum(inputs.incidents.values())
    if not count:
        return Factor("incidents", 0.0, f"no incidents in {days}", 0)
    by_sev = ", ".join(f"{n} {sev}" for sev, n in sorted(inputs.incidents.items()) if n)
    refs = ", ".join(f"{i.ref} ({i.severity}) {escape(i.title)[:80]}" for i in inputs.incident_refs)
    return Factor("incidents", float(points), f"{by_sev} in {days}" + (f": {refs}" if refs else ""), count)


def _by_value(weights: Weights) -> dict[str, float]:
    """Incident weights keyed by the severity's text (as the inputs have it): making an enum from
    a string per incident was a third of the daily recompute's time."""
    cached = _INCIDENT_WEIGHTS.get(id(weights))
    if cached is None or cached[0] is not weights:
        cached = (weights, {sev.value: w for sev, w in weights.incidents.items()})
        _INCIDENT_WEIGHTS[id(weights)] = cached
    return cached[1]


_INCIDENT_WEIGHTS: dict[int, tuple[Weights, dict[str, float]]] = {}


def _listed(count: int, noun: str, refs: list[str], days: str | None = None) -> str:
    if not count:
        return f"no {noun}s" + (f" in {days}" if days else "")
    shown = ", ".join(refs) + (" …" if len(refs) < count else "")
    return f"{count} {noun}{'s' if count != 1 else ''}" + (f" in {days}" if days else "") + f": {shown}"


def _usage(trend: float | None, weight: float) -> Factor:
    if trend is None:
        return Factor("usage", 0.0, "no usage signal")
    return Factor("usage", weight * max(0.0, -trend), f"usage trend {trend:+.2f}", trend)


def _nps(nps: float | None, weight: float) -> Factor:
    if nps is None:
        return Factor("nps", 0.0, "no NPS signal")
    return Factor("nps", weight * (100 - nps) / 200, f"NPS {nps:g}", nps)


def _tickets(inputs: Inputs, weight: float, recent: str) -> Factor:
    now, before = inputs.tickets_recent, inputs.tickets_before
    if now is None:
        return Factor("tickets", 0.0, "no ticket signal")
    if before is None:
        return Factor("tickets", 0.0, f"{now:.1f} tickets a day over {recent}", now)
    rise = max(0.0, now - before)
    return Factor("tickets", weight * rise, f"{now:.1f} tickets a day over {recent} (was {before:.1f})", now)


def _renewal(inputs: Inputs, account: AccountFacts, config: HealthPolicy, today: date) -> RuleHit | None:
    rule = config.renewal
    if rule is None or account.renewal_date is None or account.tier not in rule.tiers:
        return None
    left = (account.renewal_date - today).days
    if not 0 <= left <= rule.within.days:
        return None
    severities = {str(s) for s in rule.severities}
    if not any(n for sev, n in inputs.incidents.items() if sev in severities):
        return None
    refs = [i for i in inputs.incident_refs if i.severity in severities]
    which = f"{refs[0].severity} {refs[0].ref}" if refs else "/".join(sorted(severities))
    return RuleHit("renewal", f"{which} touched this {account.tier} account {left} days before "
                              f"its renewal ({account.renewal_date.isoformat()})")


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g}d" if days >= 1 else f"{seconds / 3600:g}h"
