"""An import from another tool (`opsloop import pagerduty|grafana DIR`) as the two files a person
reviews: the policy fragment (YAML under a header that says where it came from) and the report of
what could not be mapped, with what to do next (markdown)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from opsloop.importers.fragment import Fragment, People

_FIRST_STEPS = (
    "Add the people listed above to users.csv and run the import again, until none are left.",
    "Review and copy the fragment's sections into opsloop.yml.",
    "Download each iCal feed named above, then `opsloop oncall refresh --users users.csv`.",
)
NEXT_STEPS = {  # each vendor's, in order
    "pagerduty": (
        *_FIRST_STEPS,
        "Set each integration's token variable, and point the senders at opsloop "
        "(`/hooks/events/v2`, `/hooks/alertmanager`).",
        "Import past incidents: `opsloop history import incidents.json` (the JSON of `GET /incidents`).",
    ),
    "oncall": (  # Grafana OnCall
        *_FIRST_STEPS,
        "Set each integration's token variable and point Alertmanager or Grafana at `/hooks/alertmanager`.",
        "Import past alert groups: `opsloop history import alert_groups.json`.",
    ),
}


def fragment_yaml(fragment: Fragment, source: Path, now: datetime) -> str:
    """The fragment as a policy file to review and paste from."""
    vendor = fragment.vendor
    head = (f"# Policy fragment from `opsloop import {vendor} {source}` "
            f"({now:%Y-%m-%d %H:%M} UTC).\n"
            f"# Review it with {vendor}-report.md (what could not be mapped), then copy the\n"
            "# sections into opsloop.yml: teams and chains are new names; put the routes before yours.\n")
    return head + yaml.safe_dump(fragment.policy(), sort_keys=False, allow_unicode=True, width=110)


def report_markdown(fragment: Fragment, people: People) -> str:
    """What could not be mapped (people first, then each section's notes) and what to do next."""
    lines = [f"# What `opsloop import {fragment.vendor}` could not map", "",
             f"People: {len(people.mapped)} mapped to Slack, {len(people.unmapped)} not."]
    if people.unmapped:
        lines += ["", "## People not mapped to Slack",
                  "Add them to users.csv (`email,slack_id`) and import again; until then they are left",
                  "out of rotations and chains:"]
        lines += [f"- {who} ({vendor_id})" for vendor_id, who in sorted(people.unmapped.items())]
    for section, notes in fragment.report.items():
        lines += ["", f"## {section}", *[f"- {n}" for n in notes]]
    steps = NEXT_STEPS.get(fragment.vendor, ())
    if steps:
        lines += ["", "## Next", *[f"{i}. {s}" for i, s in enumerate(steps, 1)]]
    return "\n".join(lines) + "\n"
