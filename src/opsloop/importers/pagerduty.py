"""`opsloop import pagerduty DIR`: PagerDuty's REST API v2 JSON as an opsloop policy fragment.

DIR holds the API's answers saved as `*.json`, in any folders and files: lists
(`GET /schedules`, `/escalation_policies`, `/services?include[]=integrations`,
`/users`) or single objects (`GET /schedules/{id}`, which carries the layers).
Each file is read by its envelope key (`schedules`, `schedule`, ...).

- A schedule with one current layer, no restrictions and every member mapped
  becomes a rotation (members in order, the handoff and turn length of the
  layer, in the schedule's time zone, anchored at its virtual start); any
  other becomes an iCal feed to download (PagerDuty publishes each schedule as
  one, `http_cal_url`). Upcoming overrides are listed as `/oncall override`
  commands to type.
- An escalation policy becomes a chain: each rule a level (users, or
  `oncall:TEAM` for a schedule), its delay the level's wait, `num_loops` the
  repeats.
- A service's Events API v2 integrations become `events_v2` integrations
  (Prometheus/Alertmanager ones `alertmanager`), and the service a route
  (`service` label) naming its policy's chain.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from opsloop.errors import ConfigError
from opsloop.importers.fragment import Fragment, People, duration, slug

KINDS = {"schedules": "schedule", "schedule": "schedule", "escalation_policies": "policy",
         "escalation_policy": "policy", "services": "service", "service": "service", "users": "user",
         "user": "user"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_FILE = 50 * 1024 * 1024


def read_export(folder: Path, *, vendor: str) -> list[tuple[Path, Any]]:
    """Every JSON file under `folder` (sorted), parsed; unreadable files are named."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder (save the {vendor} API's JSON answers in one)")
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            if path.stat().st_size > MAX_FILE:
                raise ConfigError(f"{path}: larger than {MAX_FILE // (1024 * 1024)} MiB")
            found.append((path, json.loads(path.read_text(encoding="utf-8-sig"))))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ConfigError(f"{path}: cannot read it as JSON: {error}") from None
    if not found:
        raise ConfigError(f"{folder}: no *.json files")
    return found


def collect(files: list[tuple[Path, Any]], fragment: Fragment) -> dict[str, dict[str, dict[str, Any]]]:
    objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in set(KINDS.values())}
    for path, data in files:
        keys = [k for k in KINDS if isinstance(data, dict) and k in data]
        if not keys:
            fragment.note("Files", f"{path.name}: not a PagerDuty list or object this import reads; skipped")
        for key in keys:
            items = data[key] if isinstance(data[key], list) else [data[key]]
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    # a detail (`GET /schedules/{id}`) adds to its list entry
                    objects[KINDS[key]].setdefault(item["id"], {}).update(item)
    return objects


def convert(folder: Path, people: People, *, now: datetime) -> Fragment:
    fragment = Fragment("pagerduty")
    objects = collect(read_export(folder, vendor="PagerDuty"), fragment)
    for user_id, user in objects["user"].items():
        people.add(user_id, email=user.get("email"), name=user.get("name") or user.get("summary"))
    teams: dict[str, str] = {}  # schedule id -> team
    taken: set[str] = set()
    for schedule_id, schedule in objects["schedule"].items():
        teams[schedule_id] = _schedule(schedule, people, fragment, taken, now)
    chains: dict[str, str] = {}
    for policy_id, policy in objects["policy"].items():
        name = _policy(policy, people, teams, fragment, set(fragment.escalation))
        if name:
            chains[policy_id] = name
    names: set[str] = set()
    for service in objects["service"].values():
        _service(service, chains, fragment, names)
    return fragment


def _schedule(schedule: dict[str, Any], people: People, fragment: Fragment, taken: set[str],
              now: datetime) -> str:
    name = str(schedule.get("name") or schedule.get("summary") or schedule["id"])
    team = slug(name, taken)
    zone = str(schedule.get("time_zone") or "UTC")
    layers = [layer for layer in schedule.get("schedule_layers") or []
              if isinstance(layer, dict) and not _ended(layer.get("end"), now)]
    reasons = []
    if len(layers) != 1:
        reasons.append(f"{len(layers)} current layers" if layers else "no layers in the export "
                       "(save `GET /schedules/{id}` for them)")
    rotation = None
    if len(layers) == 1:
        layer = layers[0]
        members = [((entry.get("user") or {}).get("id")) for entry in layer.get("users") or []]
        unmapped = [m for m in members if not people.of(str(m))]
        turn = int(layer.get("rotation_turn_length_seconds") or 0)
        if layer.get("restrictions"):
            reasons.append("its layer is restricted to parts of the day or week")
        if unmapped:
            reasons.append(f"{len(unmapped)} member(s) not mapped to Slack")
        if turn <= 0 or turn % 60:
            reasons.append(f"a turn of {turn} s")
        start = _time(layer.get("rotation_virtual_start"))
        if start is None:
            reasons.append("no rotation_virtual_start")
        if not reasons and start is not None:
            local = start.astimezone(ZoneInfo(zone))
            rotation = {"rotation": [people.of(str(m)) for m in members],
                        "handoff": f"{WEEKDAYS[local.weekday()]} {local:%H:%M}", "length": duration(turn),
                        "timezone": zone, "anchor": local.date().isoformat()}
    if rotation is not None:
        fragment.oncall[team] = rotation
        _overrides(schedule, team, people, fragment, now)
        return team
    feed = f"schedules/{team}.ics"
    fragment.oncall[team] = {"ical": feed, "timezone": zone}
    url = schedule.get("http_cal_url") or schedule.get("web_cal_url")
    where = f"save {url} as {feed}" if url else f"export its iCal feed (schedule → Subscribe) to {feed}"
    fragment.note("Schedules", f"{name} ({schedule['id']}) → `oncall.{team}` follows an iCal feed, "
                               f"because of {', '.join(reasons)}: {where}")
    return team


def _overrides(schedule: dict[str, Any], team: str, people: People, fragment: Fragment,
               now: datetime) -> None:
    entries = list(schedule.get("overrides") or [])
    entries += ((schedule.get("overrides_subschedule") or {}).get("rendered_schedule_entries") or [])
    zone = ZoneInfo(str(schedule.get("time_zone") or "UTC"))
    for entry in entries:
        start, end = _time(entry.get("start")), _time(entry.get("end"))
        who = people.of(str((entry.get("user") or {}).get("id")))
        if start is None or end is None or end <= now:
            continue
        if who is None:
            fragment.note("Overrides", f"{team}: an override by an unmapped person from "
                                       f"{start:%Y-%m-%d %H:%M}")
            continue
        until, since = end.astimezone(zone), start.astimezone(zone)
        fragment.note("Overrides", f"type in Slack: `/oncall override {team} <@{who}> until "
                                   f"{until:%Y-%m-%d %H:%M} from {since:%Y-%m-%d %H:%M}`")


def _policy(policy: dict[str, Any], people: People, teams: dict[str, str], fragment: Fragment,
            taken: set[str]) -> str | None:
    name = str(policy.get("name") or policy.get("summary") or policy["id"])
    levels = []
    for number, rule in enumerate(policy.get("escalation_rules") or [], start=1):
        notify = []
        for target in rule.get("targets") or []:
            kind, target_id = str(target.get("type", "")), str(target.get("id"))
            if kind.startswith("schedule") and target_id in teams:
                notify.append(f"oncall:{teams[target_id]}")
            elif kind.startswith("user") and (person := people.of(target_id)):
                notify.append(person)
            else:
                fragment.note("Escalation", f"{name}, level {number}: {target.get('summary') or target_id} "
                                            f"({kind}) is left out: not mapped")
        wait = int(rule.get("escalation_delay_in_minutes") or 5) * 60
        if notify:
            levels.append({"notify": notify, "wait": duration(wait)})
        else:
            fragment.note("Escalation", f"{name}, level {number} pages nobody mapped: left out")
    if not levels:
        fragment.note("Escalation", f"{name} ({policy['id']}): no level left; not imported")
        return None
    chain = slug(name, taken)
    fragment.escalation[chain] = {"repeat": min(int(policy.get("num_loops") or 0), 20), "levels": levels}
    return chain


def _service(service: dict[str, Any], chains: dict[str, str], fragment: Fragment, names: set[str]) -> None:
    name = str(service.get("name") or service.get("summary") or service["id"])
    label = slug(name)
    for integration in service.get("integrations") or []:
        kind = _integration_kind(integration)
        summary = integration.get("summary") or integration.get("type")
        if kind is None:
            fragment.note("Integrations", f"{name}: {summary} is not an Events API v2 or Alertmanager "
                                          "integration; not imported")
            continue
        own = slug(label, names)
        prefix = "OPSLOOP_ROUTING_KEY_" if kind == "events_v2" else "OPSLOOP_TOKEN_"
        fragment.integrations.append({"name": own, "kind": kind,
                                      "token_env": prefix + own.upper().replace("-", "_")})
    policy = (service.get("escalation_policy") or {}).get("id")
    if policy in chains:
        fragment.routing.append({"match": {"service": label}, "escalation": chains[policy]})
        fragment.note("Routing", f"{name}: alerts labelled `service: {label}` route to the chain "
                                 f"{chains[policy]}; the chain pages once an `sla.policies` entry names it "
                                 f"(e.g. `match: {{kind: incident, labels: {{service: {label}}}}}`, "
                                 f"`escalation: {chains[policy]}`)")


def _integration_kind(integration: dict[str, Any]) -> str | None:
    text = " ".join(str(integration.get(k) or "") for k in ("type", "summary", "name")).lower()
    vendor = str((integration.get("vendor") or {}).get("summary") or "").lower()
    if "prometheus" in f"{text} {vendor}" or "alertmanager" in f"{text} {vendor}":
        return "alertmanager"
    if "events_api_v2" in text or "generic_events_api" in text:
        return "events_v2"
    return None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _ended(value: Any, now: datetime) -> bool:
    end = _time(value)
    return end is not None and end.tzinfo is not None and end <= now
