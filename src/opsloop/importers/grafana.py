"""`opsloop import oncall DIR`: Grafana OnCall's public API v1 JSON as an opsloop policy fragment.

DIR holds the API's list answers, each saved under its endpoint's name:
`users.json`, `schedules.json`, `on_call_shifts.json`, `escalation_chains.json`,
`escalation_policies.json`, `integrations.json` and optionally `routes.json`
and `user_groups.json` (`{"results": [...]}` as the API pages them, or a list
of such pages).

- People map to Slack by the Slack id OnCall already knows (`slack[].user_id`),
  else by email (users.csv, then the directory).
- A web or calendar schedule whose only shift is a daily or weekly
  `rolling_users` rotation of single people covering the whole time becomes a
  rotation; any other (and every `ical` schedule) an iCal feed to download.
- An escalation chain's steps in order: notify steps gather into a level, a
  `wait` step ends it with its duration; `repeat_escalation` repeats the chain.
- Alertmanager and Grafana Alerting integrations become `alertmanager`
  integrations; the default route's chain a route on the `service` label.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from opsloop.importers.fragment import Fragment, People, duration, slug
from opsloop.importers.pagerduty import WEEKDAYS, read_export

ENDPOINTS = ("users", "schedules", "on_call_shifts", "escalation_chains", "escalation_policies",
             "integrations", "routes", "user_groups")
PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
ALERTMANAGER = ("alertmanager", "grafana_alerting", "grafana", "legacy_alertmanager",
                "legacy_grafana_alerting")
NOTIFY = ("notify_persons", "notify_person_next_each_time", "notify_on_call_from_schedule",
          "notify_user_group")
REPEATS = 5  # Grafana OnCall repeats a chain at most five times


def collect(folder: Path, fragment: Fragment) -> dict[str, list[dict[str, Any]]]:
    objects: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
    for path, data in read_export(folder, vendor="Grafana OnCall"):
        pages = data if isinstance(data, list) else [data]
        if path.stem not in objects or not all(isinstance(p, dict) and isinstance(p.get("results"), list)
                                               for p in pages):
            fragment.note("Files", f"{path.name}: not one of {', '.join(f'{e}.json' for e in ENDPOINTS)} "
                                   "with `results`; skipped")
            continue
        objects[path.stem] += [item for page in pages for item in page["results"] if isinstance(item, dict)]
    return objects


def convert(folder: Path, people: People, *, now: datetime) -> Fragment:
    fragment = Fragment("oncall")
    objects = collect(folder, fragment)
    for user in objects["users"]:
        known = [s.get("user_id") for s in user.get("slack") or []
                 if isinstance(s, dict) and s.get("user_id")]
        people.add(str(user.get("id")), email=user.get("email"), name=user.get("username"),
                   slack_id=str(known[0]) if known else None)
    shifts = {str(s.get("id")): s for s in objects["on_call_shifts"]}
    teams: dict[str, str] = {}
    taken: set[str] = set()
    for schedule in objects["schedules"]:
        teams[str(schedule.get("id"))] = _schedule(schedule, shifts, people, fragment, taken)
    groups = {str(g.get("id")): (g.get("slack") or {}).get("id") for g in objects["user_groups"]}
    chains = {str(c.get("id")): c for c in objects["escalation_chains"]}
    names: dict[str, str] = {}
    chain_taken: set[str] = set()
    for chain_id, chain in chains.items():
        steps = sorted((p for p in objects["escalation_policies"]
                        if str(p.get("escalation_chain_id")) == chain_id),
                       key=lambda p: int(p.get("position") or 0))
        name = _chain(str(chain.get("name") or chain_id), steps, people, teams, groups, fragment, chain_taken)
        if name:
            names[chain_id] = name
    _integrations(objects["integrations"], objects["routes"], names, fragment)
    return fragment


def _schedule(schedule: dict[str, Any], shifts: dict[str, dict[str, Any]], people: People, fragment: Fragment,
              taken: set[str]) -> str:
    name = str(schedule.get("name") or schedule.get("id"))
    team = slug(name, taken)
    zone = str(schedule.get("time_zone") or "UTC")
    mine = [shifts[s] for s in schedule.get("shifts") or [] if s in shifts]
    reasons = []
    if schedule.get("type") == "ical":
        reasons.append("it is an iCal schedule")
    elif len(mine) != 1:
        reasons.append(f"{len(mine)} shifts in on_call_shifts.json" if mine
                       else "its shifts are not in on_call_shifts.json")
    rotation = _rotation(mine[0], zone, people, reasons) if len(mine) == 1 and not reasons else None
    if rotation is not None:
        fragment.oncall[team] = rotation
        return team
    feed = f"schedules/{team}.ics"
    fragment.oncall[team] = {"ical": feed, "timezone": zone}
    url = schedule.get("ical_url_primary")
    where = f"save {url} as {feed}" if url else f"export it (Schedules → {name} → Export, iCal) to {feed}"
    overrides = schedule.get("ical_url_overrides")
    also = f"; its overrides ({overrides}) go into the same file" if overrides else ""
    fragment.note("Schedules", f"{name} ({schedule.get('id')}) → `oncall.{team}` follows an iCal feed, "
                               f"because {', '.join(reasons)}: {where}{also}")
    return team


def _rotation(shift: dict[str, Any], zone: str, people: People, reasons: list[str]) -> dict[str, Any] | None:
    period = PERIODS.get(str(shift.get("frequency")))
    groups = shift.get("rolling_users") or []
    if shift.get("type") != "rolling_users" or period is None:
        reasons.append(f"its shift is {shift.get('type')} {shift.get('frequency') or ''}".rstrip())
        return None
    length = period * int(shift.get("interval") or 1)
    if any(shift.get(k) for k in ("by_day", "by_month", "by_monthday", "until")):
        reasons.append("its shift is limited to some days")
    if int(shift.get("duration") or 0) != int(length.total_seconds()):
        reasons.append("its shifts do not cover the whole time")
    if any(len(group) != 1 for group in groups) or not groups:
        reasons.append("several people are on call at once")
    members = [people.of(str(group[0])) for group in groups if len(group) == 1]
    if None in members:
        reasons.append(f"{members.count(None)} member(s) not mapped to Slack")
    try:
        start = datetime.fromisoformat(str(shift.get("rotation_start") or shift.get("start")))
    except ValueError:
        start = None
        reasons.append("no start")
    if reasons or start is None:
        return None
    first = int(shift.get("start_rotation_from_user_index") or 0) % len(members)
    local = start if start.tzinfo is None else start.astimezone(ZoneInfo(shift.get("time_zone") or zone))
    return {"rotation": members[first:] + members[:first],
            "handoff": f"{WEEKDAYS[local.weekday()]} {local:%H:%M}",
            "length": duration(length.total_seconds()), "timezone": shift.get("time_zone") or zone,
            "anchor": local.date().isoformat()}


def _chain(name: str, steps: list[dict[str, Any]], people: People, teams: dict[str, str],
           groups: dict[str, Any], fragment: Fragment, taken: set[str]) -> str | None:
    levels: list[dict[str, Any]] = []
    notify: list[str] = []
    repeat = 0
    for step in steps:
        kind = str(step.get("type"))
        if kind == "wait":
            if notify:
                levels.append({"notify": notify, "wait": duration(int(step.get("duration") or 300))})
            notify = []
        elif kind in NOTIFY:
            notify += _targets(name, step, people, teams, groups, fragment)
        elif kind == "repeat_escalation":
            repeat = REPEATS
        else:
            fragment.note("Escalation", f"{name}: the step `{kind}` has no counterpart here; left out")
    if notify:
        levels.append({"notify": notify, "wait": "5m"})
        if repeat:
            fragment.note("Escalation", f"{name}: its last level had no wait before repeating; it waits 5m")
    if not levels:
        fragment.note("Escalation", f"{name}: no level pages anyone mapped; not imported")
        return None
    chain = slug(name, taken)
    fragment.escalation[chain] = {"repeat": repeat, "levels": levels}
    return chain


def _targets(chain: str, step: dict[str, Any], people: People, teams: dict[str, str], groups: dict[str, Any],
             fragment: Fragment) -> list[str]:
    kind = str(step.get("type"))
    if kind == "notify_on_call_from_schedule":
        schedule = str(step.get("notify_on_call_from_schedule"))
        if schedule in teams:
            return [f"oncall:{teams[schedule]}"]
        fragment.note("Escalation", f"{chain}: schedule {schedule} is not in schedules.json; left out")
        return []
    if kind == "notify_user_group":
        group = groups.get(str(step.get("group_to_notify")))
        if group:
            return [str(group)]
        fragment.note("Escalation", f"{chain}: user group {step.get('group_to_notify')} is not in "
                                    "user_groups.json with a Slack id; left out")
        return []
    ids = step.get("persons_to_notify") or step.get("persons_to_notify_next_each_time") or []
    if kind == "notify_person_next_each_time":
        fragment.note("Escalation", f"{chain}: \"notify the next person each time\" pages them all here")
    found = [people.of(str(i)) for i in ids]
    if None in found:
        fragment.note("Escalation", f"{chain}: {found.count(None)} person(s) not mapped to Slack; left out")
    return [f for f in found if f]


def _integrations(integrations: list[dict[str, Any]], routes: list[dict[str, Any]], chains: dict[str, str],
                  fragment: Fragment) -> None:
    taken: set[str] = set()
    for integration in integrations:
        name = str(integration.get("name") or integration.get("id"))
        kind = str(integration.get("type"))
        label = slug(name)
        if kind not in ALERTMANAGER:
            fragment.note("Integrations", f"{name}: type `{kind}` is not an Alertmanager webhook; not "
                                          "imported (Events API v2 senders can use `/hooks/events/v2`)")
            continue
        own = slug(label, taken)
        fragment.integrations.append({"name": own, "kind": "alertmanager",
                                      "token_env": f"OPSLOOP_TOKEN_{own.upper().replace('-', '_')}"})
        chain = chains.get(str((integration.get("default_route") or {}).get("escalation_chain_id")))
        if chain:
            fragment.routing.append({"match": {"service": label}, "escalation": chain})
            fragment.note("Routing", f"{name}: alerts labelled `service: {label}` route to the chain "
                                     f"{chain}; the chain pages once an `sla.policies` entry names it")
        for route in routes:
            if str(route.get("integration_id")) == str(integration.get("id")) and route.get("routing_regex"):
                to = chains.get(str(route.get("escalation_chain_id")), "an unmapped chain")
                fragment.note("Routing", f"{name}: the route `{route.get('routing_regex')}` (to {to}) "
                                         "matches raw payloads; write it as `match`/`match_re` on labels")
