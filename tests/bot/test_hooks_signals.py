"""POST /hooks/signals through a Starlette app: bearer token, validation, size limit, storing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette

from bot.bootstrap import Services
from bot.edge import MAX_BODY, Tokens, bearer
from bot.hooks_signals import signals_route
from opsloop.health.models import HealthPrompt, HealthSignal

TOKEN = "s3cret-signals-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"tenant": "globex", "kind": "usage", "value": -0.3, "at": "2026-11-23T08:00:00Z"}


class Client:
    """Posts to the ASGI app in-process (httpx's ASGITransport), one event loop per request."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://opsloop.test") as http:
                return await http.post(path, **kwargs)

        return asyncio.run(send())


@pytest.fixture
def client(services: Services) -> Client:
    return Client(Starlette(routes=[signals_route(services, environ={"OPSLOOP_TOKEN_SIGNALS": TOKEN})]))


def count(services: Services) -> int:
    with services.db.transaction() as session:
        return len(session.exec(select(HealthSignal)).all())


def test_signals_are_stored_and_rescored(client: Client, services: Services) -> None:
    batch = [GOOD, {**GOOD, "kind": "nps", "value": -60}, {**GOOD, "tenant": "acme", "kind": "tickets", "value": 3}]
    response = client.post("/hooks/signals", json=batch, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 3, "tenants": ["acme", "globex"], "prompts": 0}
    assert count(services) == 3
    # usage -0.3 (9) and NPS -60 (16): 75, healthy for mid-market
    assert services.health.view(actor="U0CSM1", account="globex").score.score == 75


def test_signals_that_turn_an_account_at_risk_prompt_its_csm(client: Client, services: Services) -> None:
    bad = [{**GOOD, "value": -1}, {**GOOD, "kind": "nps", "value": -100}]  # 30 + 20: 50, at-risk
    assert client.post("/hooks/signals", json=bad, headers=AUTH).json()["prompts"] == 1
    with services.db.transaction() as session:
        prompt = session.exec(select(HealthPrompt)).one()
    assert (prompt.tenant_id, prompt.csm, prompt.score) == ("globex", "U0CSM1", 50)


def test_a_missing_or_wrong_token_is_401_and_stores_nothing(client: Client, services: Services) -> None:
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}]:
        response = client.post("/hooks/signals", json=GOOD, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    assert count(services) == 0


def test_an_unset_token_variable_refuses_everyone(services: Services) -> None:
    client = Client(Starlette(routes=[signals_route(services, environ={})]))
    assert client.post("/hooks/signals", json=GOOD, headers=AUTH).status_code == 401
    assert client.post("/hooks/signals", json=GOOD, headers={"Authorization": "Bearer "}).status_code == 401


def test_only_signals_integrations_tokens_count(services: Services) -> None:
    tokens = Tokens.of(services.policy, "signals", {"OPSLOOP_TOKEN_SIGNALS": TOKEN,
                                                     "OPSLOOP_TOKEN_PROMETHEUS": "prometheus-token"})
    assert tokens.identify(bearer(f"Bearer {TOKEN}")) == "health"
    assert tokens.identify(bearer(f"bearer {TOKEN}")) == "health"
    assert tokens.identify(bearer(f"Bearer {TOKEN}x")) is None
    assert tokens.identify(bearer("Bearer prometheus-token")) is None  # another kind's token
    assert tokens.identify(bearer(None)) is None


def test_a_bad_signal_is_422_naming_the_field_and_nothing_is_stored(client: Client,
                                                                    services: Services) -> None:
    response = client.post("/hooks/signals", json=[GOOD, {**GOOD, "kind": "nps", "value": 101}], headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == "[1].value" and "nps is -100..100" in response.json()["error"]
    response = client.post("/hooks/signals", json=[GOOD, {**GOOD, "tenant": "hooli"}], headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == "[1].tenant" and "unknown tenant 'hooli'" in response.json()["error"]
    response = client.post("/hooks/signals", json={**GOOD, "kind": "churn"}, headers=AUTH)
    assert (response.status_code, response.json()["field"]) == (422, "kind")
    assert count(services) == 0


def test_a_body_that_is_not_json_is_400(client: Client) -> None:
    response = client.post("/hooks/signals", content=b"{not json", headers=AUTH)
    assert response.status_code == 400 and "not JSON" in response.json()["error"]


def test_a_body_over_1_mib_is_413(client: Client, services: Services) -> None:
    big = json.dumps([GOOD] * (MAX_BODY // len(json.dumps(GOOD)) + 10)).encode()
    assert len(big) > MAX_BODY
    response = client.post("/hooks/signals", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    response = client.post("/hooks/signals", content=chunks(), headers=AUTH)
    assert response.status_code == 413
    assert count(services) == 0
