"""Requests as Slack sends them: form-encoded slash commands, `payload=` interactivity, JSON
events, each signed with the signing secret (v0 HMAC-SHA256 over `v0:timestamp:body`)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

_n = itertools.count(1)
FORM = "application/x-www-form-urlencoded"


def sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def command_body(command: str, text: str, *, user: str, respond_to: str, channel: str = "C0OPS") -> str:
    n = next(_n)
    return urlencode({
        "token": "legacy", "team_id": "T0TEAM", "team_domain": "team", "channel_id": channel,
        "channel_name": "ops", "user_id": user, "user_name": user.lower(), "command": command,
        "text": text, "api_app_id": "A0APP", "is_enterprise_install": "false",
        "response_url": f"{respond_to}/respond/command-{n}", "trigger_id": f"trigger-{n}",
    })


def press_body(action_id: str, value: str, *, user: str, respond_to: str, channel: str = "C0OPS",
               message_ts: str = "1700000000.000001") -> str:
    n = next(_n)
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP", "token": "legacy", "trigger_id": f"trigger-{n}",
        "team": {"id": "T0TEAM", "domain": "team"}, "channel": {"id": channel, "name": "ops"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": f"{respond_to}/respond/press-{n}",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "actions.0",
                     "value": value, "action_ts": f"{time.time():.6f}", "text": {"type": "plain_text",
                                                                                   "text": "x"}}],
    }
    return urlencode({"payload": json.dumps(payload)})


def submit_body(callback_id: str, values: dict[str, str], *, user: str, metadata: str,
                selects: frozenset[str] = frozenset({"severity"})) -> str:
    state = {
        name: {name: ({"type": "static_select", "selected_option": {"value": value}} if name in selects
                      else {"type": "plain_text_input", "value": value})}
        for name, value in values.items()
    }
    payload = {
        "type": "view_submission", "team": {"id": "T0TEAM"}, "api_app_id": "A0APP", "token": "legacy",
        "user": {"id": user, "team_id": "T0TEAM"}, "trigger_id": f"trigger-{next(_n)}",
        "view": {"id": "V0VIEW", "type": "modal", "callback_id": callback_id, "team_id": "T0TEAM",
                 "private_metadata": metadata, "state": {"values": state}},
    }
    return urlencode({"payload": json.dumps(payload)})


def event_body(event: dict[str, Any]) -> str:
    return json.dumps({"token": "legacy", "team_id": "T0TEAM", "api_app_id": "A0APP",
                       "type": "event_callback", "event_id": f"Ev{next(_n)}", "event_time": int(time.time()),
                       "event": event})
