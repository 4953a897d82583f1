"""A secret reaches the outgoing request and nothing else: not the database, audit, outbox, logs or errors."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
from sqlalchemy import text
from sqlmodel import SQLModel

from opsloop.core import Core
from tests.core.remediation.conftest import API, SECRET, approve_twice, call, start


def everything_stored(rem: Core) -> str:
    dump = []
    with rem.db.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(text(f'SELECT * FROM "{table.name}"')):
                dump.append(repr(tuple(row)))
    return "\n".join(dump)


def test_the_secret_appears_only_in_the_outgoing_request(rem: Core, api: respx.MockRouter,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # the API echoes the token back: in a captured output, and in an error body
    restart = api.post(f"https://{API}/services/web/restart").mock(
        return_value=httpx.Response(202, json={"job": {"id": f"job-{SECRET}"}}))
    jobs = api.get(url__regex=rf"https://{API}/jobs/.*").mock(return_value=httpx.Response(200))
    probe = api.post(f"https://{API}/probe").mock(
        return_value=httpx.Response(400, text=f"bad token {SECRET} for you"))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    assert restart.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"
    assert call(rem).state == "succeeded"
    # the echoed output was stored scrubbed: a later URL using it carries that text, never the value
    follow = call(rem, "follow")
    assert follow.state == "succeeded" and jobs.calls.last.request.url.raw_path == b"/jobs/job-[secret%20OPS_API_TOKEN]"
    start(rem, "probe", host="ops-api.internal")  # INC-2: the API answers 400, echoing the token
    rem.remediation.work()
    assert probe.calls.last.request.content == f'{{"token_check": "{SECRET}"}}'.encode()
    failed = call(rem, "call")
    assert failed.state == "failed" and "bad token [secret OPS_API_TOKEN] for you" in (failed.error or "")
    errors = [rem.commands.handle("/runbook", "retry INC-2 call", actor="U0RESP2").text]
    rem.remediation.work()
    assert probe.call_count == 2
    checklists = [m.plain() for ref in ("INC-1", "INC-2") for m in rem.checklists.of(ref)]
    stored = everything_stored(rem)
    assert "[secret OPS_API_TOKEN]" in stored  # where it was, its name is; the value is not
    for where, content in [("database", stored), ("logs", caplog.text), ("replies", "\n".join(errors)),
                           ("checklists", "\n".join(checklists))]:
        assert SECRET not in content, f"the secret leaked into the {where}"
