"""Issue 15 part 7: webhooks never answer 500 to bad input, and `GET /openapi.json` stays true.

Through the real server (uvicorn, the real app, every webhook's token set): hostile bodies get 400
or 422 naming the field and store nothing, on SQLite and PostgreSQL; every route of the app is in
the document and real accepted payloads match it; schemathesis fuzzes every operation of it
(schema-valid and schema-breaking data) and no answer may be a 5xx or stray from the document.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import func, select
from starlette.routing import Route

from bot.bootstrap import Services
from bot.settings import Settings
from opsloop.changes.models import ChangeEvent
from opsloop.health.models import HealthSignal
from opsloop.intake.models import Alert, InboxEntry
from opsloop.models import WorkItem
from tests.bot.e2e import serve, slack_policy, write_policy
from tests.bot.live_server import LiveServer
from tests.bot.test_hooks import am_payload
from tests.support import FakeClock, wait_until

TOKENS = {"OPSLOOP_TOKEN_PROMETHEUS": "am-token-0123456789", "OPSLOOP_ROUTING_KEY_MONITORS": "v2-key-0123456789",
          "OPSLOOP_TOKEN_SIGNALS": "signals-token-0123456789", "OPSLOOP_TOKEN_BEATS": "beats-token-0123456789"}
AM, V2, SIGNALS, BEATS = TOKENS.values()
FUZZ_REQUESTS = 2000  # issue 15 part 7: at least 2,000 generated requests, shared out over the operations


@pytest.fixture
def webhooks(monkeypatch: pytest.MonkeyPatch, slack_settings: Settings, clock: FakeClock,
             tmp_path: Path) -> Iterator[tuple[Services, LiveServer]]:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    policy = slack_policy()
    policy["integrations"].append({"name": "beats", "kind": "heartbeat", "token_env": "OPSLOOP_TOKEN_BEATS"})
    policy["heartbeats"] = {"queue-worker": {"every": "5m", "grace": "1m"}}
    with serve(slack_settings.model_copy(update={"config": write_policy(tmp_path, policy)}), clock,
               scheduler=False) as served:
        yield served


def stored(services: Services) -> tuple[int, ...]:
    """What the webhooks stored, once every accepted one has been processed (the intake answers
    when a webhook is stored in its inbox and turns it into incidents right after)."""
    def waiting() -> int:
        with services.db.transaction() as session:
            return int(session.exec(select(func.count()).select_from(InboxEntry)).one())

    wait_until(lambda: waiting() == 0, what="the accepted webhooks to be processed")
    with services.db.transaction() as session:
        return tuple(session.exec(select(func.count()).select_from(table)).one()
                     for table in (WorkItem, Alert, ChangeEvent, HealthSignal))


def post(live: LiveServer, path: str, body: bytes, token: str | None = None) -> httpx.Response:
    assert live.client is not None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return live.client.post(path, content=body, headers=headers)


def v2_trigger(**payload: Any) -> dict[str, Any]:
    return {"routing_key": V2, "event_action": "trigger",
            "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "error", **payload}}


def change(**payload: Any) -> dict[str, Any]:
    return {"routing_key": V2, "payload": {"summary": "Deployed api v42", "source": "ci", **payload}}


def signal(**fields: Any) -> dict[str, Any]:
    return {"tenant": "acme", "kind": "usage", "value": -0.3, "at": "2026-11-23T08:00:00Z", **fields}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def am_with(**alert: Any) -> bytes:
    hook = am_payload()
    hook["alerts"][0].update(alert)
    return dumps(hook)


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HOSTILE = {
    "deep nesting": ("/hooks/alertmanager", AM, dumps(am_payload())[:-1] + f', "x": {nested(5000)}}}'.encode(),
                     400, "nested deeper than 32 levels"),
    "deep custom_details": ("/hooks/events/v2", None,
                            dumps(v2_trigger())[:-2] + f', "custom_details": {nested(40)}}}}}'.encode(),
                            400, "payload.custom_details.a.a"),
    "a 5,000-digit integer": ("/hooks/alertmanager", AM, dumps(am_payload())[:-1] + b', "truncatedAlerts": '
                              + b"9" * 5000 + b"}", 400, "truncatedAlerts: an integer out of range"),
    "a 20-digit integer": ("/hooks/signals", SIGNALS, b'{"tenant": "acme", "kind": "tickets", "value": '
                           + b"9" * 20 + b', "at": "2026-11-23T08:00:00Z"}', 400, "value: an integer out of range"),
    "an infinite number": ("/hooks/signals", SIGNALS, dumps(signal())[:-1] + b', "value": 1e999}', 400,
                           "value: the number 1e999 is out of range"),
    "NaN": ("/hooks/events/v2", None, dumps(v2_trigger())[:-2] + b', "custom_details": {"x": NaN}}}', 400,
            "payload.custom_details.x: NaN is not a JSON number"),
    "whitespace-only groupKey": ("/hooks/alertmanager", AM, dumps({**am_payload(), "groupKey": " \t "}), 422,
                                 "groupKey: must not be empty or only whitespace"),
    "whitespace-only summary": ("/hooks/events/v2", None, dumps(v2_trigger(summary="   ")), 400,
                                "payload.summary: must not be empty or only whitespace"),
    "whitespace-only source": ("/hooks/events/v2/enqueue", None, dumps(v2_trigger(source="\n")), 400,
                               "payload.source: must not be empty or only whitespace"),
    "whitespace-only change summary": ("/hooks/events/v2/change/enqueue", None, dumps(change(summary="  ")), 400,
                                       "payload.summary: must not be empty or only whitespace"),
    "whitespace-only tenant": ("/hooks/signals", SIGNALS, dumps(signal(tenant="   ")), 422, "tenant"),
    "a date before year 1 in UTC": ("/hooks/alertmanager", AM, am_with(startsAt="0001-01-01T00:00:00+01:00"), 422,
                                    "alerts[0].startsAt: out of range once in UTC"),
    "a date after 9999 in UTC": ("/hooks/alertmanager", AM, am_with(endsAt="9999-12-31T23:59:59-01:00"), 422,
                                 "alerts[0].endsAt: out of range once in UTC"),
    "an event timestamp before year 1": ("/hooks/events/v2", None,
                                         dumps(v2_trigger(timestamp="0001-01-01T00:00:00+01:00")), 400,
                                         "payload.timestamp: out of range once in UTC"),
    "a change timestamp before year 1": ("/hooks/events/v2/change/enqueue", None,
                                         dumps(change(timestamp="0001-01-01T00:30:00+05:00")), 400,
                                         "payload.timestamp: out of range once in UTC"),
    "a signal before year 1": ("/hooks/signals", SIGNALS, dumps(signal(at="0001-01-01T00:00:00+01:00")), 422,
                               "out of range once in UTC"),
    "a lone surrogate in a label": ("/hooks/alertmanager", AM,
                                    dumps(am_payload()).replace(b'"instance": "fp1"', b'"instance": "\\ud800"'),
                                    400, "alerts[0].labels.instance: contains a lone surrogate"),
    "a lone surrogate in a key": ("/hooks/events/v2", None,
                                  dumps(v2_trigger()).replace(b'"summary"', b'"\\udfff"', 1), 400,
                                  "payload.(a key): contains a lone surrogate"),
    "a NUL in a summary": ("/hooks/events/v2", None, dumps(v2_trigger(summary="disk\u0000full")), 400,
                           "payload.summary: contains a NUL character"),
    "a NUL in an annotation": ("/hooks/alertmanager", AM, am_with(annotations={"summary": "a\u0000b"}), 400,
                               "alerts[0].annotations.summary: contains a NUL character"),
    "a 100,000-character fingerprint": ("/hooks/alertmanager", AM, am_with(fingerprint="f" * 100_000), 422,
                                        "alerts[0].fingerprint: String should have at most 255 characters"),
    "a 100,000-character dedup_key": ("/hooks/events/v2", None, dumps({**v2_trigger(), "dedup_key": "k" * 100_000}),
                                      400, "dedup_key: String should have at most 255 characters"),
    "not UTF-8": ("/hooks/signals", SIGNALS, b'{"tenant": "\xff"}', 400, "(body): not UTF-8"),
}


@pytest.mark.parametrize(("path", "token", "body", "status", "named"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_webhook_bodies_get_400_or_422_naming_the_field_and_store_nothing(
    webhooks: tuple[Services, LiveServer], path: str, token: str | None, body: bytes, status: int, named: str
) -> None:
    services, live = webhooks
    before = stored(services)
    answer = post(live, path, body, token)
    assert answer.status_code == status, answer.text
    assert named in json.dumps(answer.json(), ensure_ascii=False), answer.text
    assert stored(services) == before


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def body_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema


ACCEPTED = [
    ("/hooks/alertmanager", AM, am_payload("DiskFull", "fp9"), 200),
    ("/hooks/events/v2", None, v2_trigger(timestamp="2026-11-23T08:59:00+00:00Z"), 202),
    ("/hooks/events/v2/enqueue", None, {"routing_key": V2, "event_action": "acknowledge", "dedup_key": "k-1"}, 202),
    ("/hooks/events/v2/change/enqueue", None, change(timestamp="2026-11-23T08:00:00Z"), 202),
    ("/hooks/signals", SIGNALS, [signal(), signal(kind="nps", value=40)], 200),
    ("/hooks/signals", SIGNALS, signal(kind="tickets", value=3), 200),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_document_describes_every_route_and_the_payloads_opsloop_accepts(
    webhooks: tuple[Services, LiveServer],
) -> None:
    services, live = webhooks
    doc = live.get("/openapi.json").json()
    routes = {(r.path, method.lower()) for r in live.server.config.app.routes  # type: ignore[attr-defined]
              if isinstance(r, Route) for method in (r.methods or ()) if method != "HEAD"}
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes == described
    for path, token, payload, status in ACCEPTED:
        resolve(doc, body_schema(doc, path)).validate(payload)
        answer = post(live, path, dumps(payload), token)
        assert answer.status_code == status, answer.text
        answer_schema = doc["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]
        resolve(doc, answer_schema["schema"]).validate(answer.json())
    checked_in = post(live, "/hooks/heartbeat/queue-worker", b"", BEATS)
    resolve(doc, {"$ref": "#/components/schemas/CheckedIn"}).validate(checked_in.json())
    assert stored(services)[1:] == (2, 1, 3)  # two alerts (Alertmanager, the event), the change, the signals


def authorize(case: schemathesis.Case) -> None:
    """Give the generated request the integration's credentials, so it reaches the parsing and storage
    behind them (without, nearly everything would be a 401)."""
    path = case.operation.path
    token = {"/hooks/alertmanager": AM, "/hooks/signals": SIGNALS, "/hooks/heartbeat/{name}": BEATS}.get(path)
    if token is not None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    if path.startswith("/hooks/events/") and isinstance(case.body, dict):
        case.body["routing_key"] = V2


def breakable(doc: dict[str, Any], operation: Any) -> bool:
    """Whether the operation has anything schema-breaking data can break (a body or a parameter): for
    one without (GET /healthz) there is no negative case and hypothesis would say Unsatisfiable."""
    described = doc["paths"][operation.path][operation.method.lower()]
    return "requestBody" in described or bool(described.get("parameters"))


@pytest.mark.slow
def test_fuzzing_every_operation_finds_no_server_error(webhooks: tuple[Services, LiveServer]) -> None:
    _, live = webhooks
    assert live.client is not None
    base = str(live.client.base_url)
    doc = live.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    runs = [(operation, mode) for operation in operations for mode in schemathesis.GenerationMode
            if mode is schemathesis.GenerationMode.POSITIVE or breakable(doc, operation)]
    # an operation with nothing to vary (GET /healthz) is sent once; the others share the 2,000, a few over
    examples = math.ceil(FUZZ_REQUESTS * 1.03 / sum(1 for operation, _ in runs if breakable(doc, operation)))
    sent: Counter[str] = Counter()
    session = requests.Session()  # one keep-alive connection, not a new one per request
    for operation, mode in runs:
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            authorize(case)
            response = case.call(base_url=base, session=session)
            sent[f"{case.method.upper()} {case.operation.path}"] += 1
            case.validate_response(response, checks=checks)

        fuzz()
    assert set(sent) == {f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item}
    assert sum(sent.values()) >= FUZZ_REQUESTS, sent
