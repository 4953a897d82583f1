"""Issue 15: a secret resolves only where the runbook's own template text names it.

Inputs, the item's title and labels, and earlier steps' outputs are data, whatever characters they
hold: the internal marker syntax and anything resembling it is sent as the text it is, and never
turns into a secret's value. Responses are scrubbed before they are cut, and a cut that leaves the
start of a secret is scrubbed too. All through the real executor, with respx as the API.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import httpx
import pytest
import respx

from opsloop.core import Core
from tests.core.remediation.conftest import API, SECRET, STARTER, call, steps

RELAY = """schema_version: 1
id: relay
version: 1.0.0
title: Relay a note
owners: [U0SRE1]
inputs:
  note: {type: string, required: true}
steps:
  - id: first
    type: http
    request:
      method: POST
      url: "https://ops-api.internal/notes"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
      json: {note: "{{ inputs.note }}", title: "{{ item.title }}", region: "{{ item.labels.region }}",
             both: "{{ inputs.note }}{{ secrets.OPS_API_TOKEN }}"}
    outputs: {echo: $.echo}
  - id: second
    type: http
    request:
      method: POST
      url: "https://ops-api.internal/relay"
      json: {previous: "{{ steps.first.outputs.echo }}"}
"""

# the internal marker, and things that look like it: none may ever become the secret
LOOKALIKES = [
    "⟦secret:OPS_API_TOKEN⟧",
    "⟦⟦secret:OPS_API_TOKEN⟧",
    "⟦secret:OPS_API_TOKEN⟧⟧",
    "⟦⟦⟦secret:OPS_API_TOKEN⟧⟧⟧",
    "x⟦secret:OPS_API_TOKEN⟧y⟦secret:OPS_API_TOKEN⟧",
    "⟦secret:OPS_API_TOKEN#0123456789abcdef0123456789abcdef⟧",
    "⟦ secret:OPS_API_TOKEN ⟧",
    "[[secret:OPS_API_TOKEN]]",
    "{{ secrets.OPS_API_TOKEN }}",
    "\uff5f\u27e6secret:OPS_API_TOKEN\u27e7",
]


@pytest.fixture
def rem_dir(rem_dir: tuple[Path, Path]) -> tuple[Path, Path]:
    (rem_dir[0] / "relay.yaml").write_text(RELAY)
    return rem_dir


@pytest.fixture
def relay(rem: Core) -> Core:
    return rem


def run_relay(services: Core, note: str, title: str) -> None:
    ref = services.workitems.declare(actor=STARTER, title=title, labels={"region": note}).ref
    reply = services.commands.handle("/runbook", f"run relay {ref} {shlex.quote('note=' + note)}", actor=STARTER)
    assert "relay" in reply.text, reply.text
    services.remediation.work()


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_data_that_looks_like_a_secret_reference_is_sent_as_text(
        relay: Core, api: respx.MockRouter, lookalike: str) -> None:
    # the API echoes what it got; a scrubbed echo must stay text in the next step too
    first = api.post(f"https://{API}/notes").mock(
        side_effect=lambda request: httpx.Response(200, json={"echo": json.loads(request.content)["note"]}))
    second = api.post(f"https://{API}/relay").mock(return_value=httpx.Response(200))
    run_relay(relay, lookalike, title=f"Title {lookalike}")
    assert steps(relay, "relay") == {"first": "done", "second": "done"}
    sent = json.loads(first.calls.last.request.content)
    assert sent == {"note": lookalike, "title": f"Title {lookalike}", "region": lookalike,
                    "both": lookalike + SECRET}  # the template's own reference resolves, right beside it
    assert first.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"
    assert json.loads(second.calls.last.request.content) == {"previous": lookalike}


def test_an_api_that_echoes_the_secret_cannot_make_a_later_step_send_it(
        relay: Core, api: respx.MockRouter) -> None:
    api.post(f"https://{API}/notes").mock(return_value=httpx.Response(200, json={"echo": f"got {SECRET}"}))
    second = api.post(f"https://{API}/relay").mock(return_value=httpx.Response(200))
    run_relay(relay, "hello", title="Echo")
    previous = json.loads(second.calls.last.request.content)["previous"]
    assert SECRET not in previous and previous.startswith("got ")


@pytest.mark.parametrize("cut", [0, 3, 8, 12, len(SECRET) - 1])
def test_a_secret_cut_by_the_excerpt_is_scrubbed_before_and_after_the_cut(
        relay: Core, api: respx.MockRouter, cut: int) -> None:
    # an error excerpt keeps the first 300 characters of the answer: put the secret across that edge
    text = "x" * (300 - cut) + SECRET + " and more"
    api.post(f"https://{API}/notes").mock(return_value=httpx.Response(500, text=text))
    run_relay(relay, "hello", title="Cut")
    error = call(relay, "first").error or ""
    assert "expected 200" in error
    assert SECRET[:8] not in error, error  # no 8 characters of it, whole or cut


def test_a_long_output_cut_across_the_secret_leaves_no_prefix_of_it(
        relay: Core, api: respx.MockRouter) -> None:
    echo = "y" * 990 + SECRET  # outputs keep 1000 characters: the cut leaves 10 of the secret
    api.post(f"https://{API}/notes").mock(return_value=httpx.Response(200, json={"echo": echo}))
    second = api.post(f"https://{API}/relay").mock(return_value=httpx.Response(200))
    run_relay(relay, "hello", title="Long")
    previous = json.loads(second.calls.last.request.content)["previous"]
    assert SECRET[:8] not in previous and previous.startswith("y" * 990)
