"""Webhooks over HTTPS, for ticket systems and customers' status endpoints.

A target is either `env:NAME` (the URL is a secret kept in the environment)
or the URL itself. URLs never appear in errors or logs: they often carry a
token. A few quick retries absorb a blip; after that the outbox's durable
backoff (and the endpoint's `Retry-After`, read strictly) takes over. One send,
quick retries included, ends within `deadline` seconds however slowly the
endpoint answers (`opsloop.deadline`, with a client from `deadline_client`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from opsloop.deadline import deadline
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError, PermanentDeliveryError, retry_after

DEADLINE = 15.0  # seconds one send may take, quick retries included


class WebhookSender:
    def __init__(self, client: httpx.Client, *, env: Mapping[str, str] | None = None,
                 quick_attempts: int = 3, deadline: float = DEADLINE) -> None:
        self.client = client
        self.env = os.environ if env is None else env
        self.quick_attempts = quick_attempts
        self.deadline = deadline

    def _url(self, target: str) -> str:
        if target.startswith("env:"):
            url = self.env.get(target.removeprefix("env:"))
            if not url:
                raise PermanentDeliveryError(f"{target.removeprefix('env:')} is not set")
            return url
        return target

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        url = self._url(message.target)
        host = urlsplit(url).hostname or "?"

        @retry(retry=retry_if_exception_type(httpx.TransportError), reraise=True,
               stop=stop_after_attempt(self.quick_attempts),
               wait=wait_exponential(multiplier=0.2, max=2))
        def post() -> httpx.Response:
            return self.client.post(url, json=message.payload["json"],
                                    headers={"Idempotency-Key": message.key})

        try:
            with deadline(self.deadline):
                response = post()
        except httpx.TimeoutException:
            raise DeliveryError(f"webhook {host} did not answer within {self.deadline:g}s") from None
        except httpx.TransportError as error:
            raise DeliveryError(f"webhook {host} unreachable: {type(error).__name__}") from None
        if response.is_success:
            return Delivered(external_id=response.headers.get("x-request-id"), external_target=host)
        if response.status_code == 429 or response.status_code >= 500:
            asked = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            raise DeliveryError(f"webhook {host} answered {response.status_code}", retry_after=asked)
        raise PermanentDeliveryError(f"webhook {host} refused with {response.status_code}")
