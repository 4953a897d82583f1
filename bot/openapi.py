"""`GET /openapi.json`: the OpenAPI 3.1 document of what `opsloop serve` answers.

The request bodies are the JSON Schemas of the very pydantic models the routes
validate with (`opsloop.intake.payloads`, `opsloop.health.signals.SignalIn`),
so the document cannot drift from what is accepted; the answers are written
here once. tests/bot/test_openapi.py checks that every route of the app is in
it and that real accepted payloads match it, and fuzzes it with schemathesis
(every answer must match its schema, and none may be a 5xx).

What the field types cannot say is refused too (400 or 422 naming the field):
a body nested deeper than 32 levels, integers past 64 bits, NaN or infinite
numbers, text with NUL characters or lone surrogates (`bot.edge.parse_json`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from opsloop.health.signals import SignalIn
from opsloop.intake.payloads import AlertmanagerWebhook, ChangeEvent, V2Event
from opsloop.status.links import MAX_TOKEN

REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (AlertmanagerWebhook, V2Event, ChangeEvent, SignalIn)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _strings() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


ANSWERS: dict[str, dict[str, Any]] = {
    # Alertmanager and the health routes refuse in opsloop's words; Events v2 routes as PagerDuty does
    "AlertmanagerAccepted": _object(["status", "accepted"], status={"const": "ok"},
                                    accepted={"type": "integer", "minimum": 0}),
    "EventAccepted": _object(["status", "message"], status={"const": "success"}, message={"type": "string"},
                             dedup_key={"type": ["string", "null"]}),
    "SignalsStored": _object(["stored", "tenants", "prompts"], stored={"type": "integer"},
                             tenants=_strings(), prompts={"type": "integer"}),
    "CheckedIn": _object(["status", "heartbeat", "next_due", "resolved"], status={"const": "ok"},
                         heartbeat={"type": "string"}, next_due={"type": "string", "format": "date-time"},
                         resolved={"type": ["string", "null"]}),
    "Refusal": _object(["error"], error={"type": "string"}, errors=_strings(), field={"type": "string"}),
    "EventRefusal": _object(["status", "message", "errors"], status={"type": "string"},
                            message={"type": "string"}, errors=_strings()),
}
# what a status link's token looks like (`opsloop.status.links`: a nonce, a dot, its signature)
LINK_PATTERN = r"^[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{16,64}$"
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _refusals(schema: str, *statuses: int) -> dict[str, Any]:
    words = {400: "not JSON opsloop can hold, or (Events v2) an invalid event; names the field",
             401: "no or a wrong token (nothing is read or stored)", 404: "no heartbeat of that name",
             413: "the body is over 1 MiB (reading stops there)",
             422: "a payload of the wrong shape; names the field; nothing is stored",
             503: "it could not be stored now (the database is away) and nothing was: send it again "
                  "after Retry-After"}
    return {str(status): _json(_ref(schema), words[status]) for status in statuses}


def _post(summary: str, body: dict[str, Any] | None, ok: tuple[int, str], refusal: str, *statuses: int,
          secured: bool = True, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary,
                                 "responses": {str(ok[0]): _json(_ref(ok[1]), "accepted"),
                                               **_refusals(refusal, *statuses)}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if secured:
        operation["security"] = BEARER
    if parameters:
        operation["parameters"] = parameters
    return {"post": operation}


def _get(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": summary,
                                                              "content": {media: {"schema": {}}}}}}}


def _page(summary: str, media: str, *, token: bool = False) -> dict[str, Any]:
    """A status page or feed (`bot.status_routes`): HTML or Atom, a 404 page for any token that opens
    nothing (the same as any wrong path), a 503 page while the database does not answer."""
    html = "text/html"
    operation: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": summary, "content": {media: {"schema": {"type": "string"}}}},
        "404": {"description": "no such page (a malformed, forged or revoked token; any wrong path)",
                "content": {html: {"schema": {"type": "string"}}}},
        "503": {"description": "the database does not answer; try again",
                "content": {html: {"schema": {"type": "string"}}}}}}
    if token:
        link = {"type": "string", "maxLength": MAX_TOKEN, "pattern": LINK_PATTERN}
        operation["parameters"] = [{"name": "token", "in": "path", "required": True, "schema": link,
                                    "description": "the tenant's signed link (`opsloop status link`)"}]
    return {"get": operation}


def document() -> dict[str, Any]:
    """The OpenAPI document (built once per app: a few milliseconds)."""
    _, defs = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF)
    schemas = {**defs.get("$defs", {}), **ANSWERS}
    events = _post("An Events API v2 event (PagerDuty-compatible); the body's routing_key names the "
                   "integration", _ref("V2Event"), (202, "EventAccepted"), "EventRefusal", 400, 401, 413, 503,
                   secured=False)
    signals = {"oneOf": [_ref("SignalIn"), {"type": "array", "items": _ref("SignalIn"), "minItems": 1}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "opsloop", "version": "1",
                 "description": "Webhooks into opsloop, its health endpoints and its status pages. "
                                "Bodies over 1 MiB get 413."},
        "paths": {
            "/hooks/alertmanager": _post(
                "Prometheus Alertmanager's webhook (payload version 4)", _ref("AlertmanagerWebhook"),
                (200, "AlertmanagerAccepted"), "Refusal", 400, 401, 413, 422, 503),
            "/hooks/events/v2": events,
            "/hooks/events/v2/enqueue": events,
            "/hooks/events/v2/change/enqueue": _post(
                "A change event (a deploy, a config change), shown with incidents of its service",
                _ref("ChangeEvent"), (202, "EventAccepted"), "EventRefusal", 400, 401, 413, secured=False),
            "/hooks/signals": _post("Customer-health signals, one or a list: all stored or none",
                                    signals, (200, "SignalsStored"), "Refusal", 400, 401, 413, 422),
            "/hooks/heartbeat/{name}": _post(
                "A heartbeat's check-in (the body, if any, is ignored)", None, (200, "CheckedIn"), "Refusal",
                400, 401, 404, 413,
                parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]),
            "/slack/events": {"post": {
                "summary": "Slack's Request URL: commands, interactivity and events, signed by Slack",
                "parameters": [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                               for name in ("X-Slack-Request-Timestamp", "X-Slack-Signature")],
                "requestBody": {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "acknowledged (a replay: acknowledged, nothing done)"},
                              "401": {"description": "not verified: nothing runs"},
                              "413": {"description": "the body is over its limit"}}}},
            "/healthz": _get("The process answers"),
            "/readyz": {"get": {"summary": "The database answers and its schema is current", "responses": {
                "200": _json(_object(["status"], status={"const": "ready"}), "ready"),
                "503": _json(_object(["status", "reason"], status={"const": "unavailable"},
                                     reason={"type": "string"}), "not ready, and why")}}},
            "/metrics": _get("Prometheus metrics", "text/plain"),
            "/openapi.json": _get("This document"),
            "/status": _page("The public status page: items marked public and their approved updates",
                             "text/html"),
            "/status/feed.atom": _page("The public status page as an Atom feed", "application/atom+xml"),
            "/status/t/{token}": _page("One tenant's status page", "text/html", token=True),
            "/status/t/{token}/feed.atom": _page("One tenant's status page as an Atom feed",
                                                 "application/atom+xml", token=True),
        },
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "the integration's token (token_env)"}}},
    }
