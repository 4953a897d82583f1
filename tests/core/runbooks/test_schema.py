"""Runbook files: precise errors, a sandbox that holds, and versions that compare like semver."""

from __future__ import annotations

import re

import pytest

from opsloop.errors import ConfigError, InvalidInput
from opsloop.runbooks.loader import parse
from opsloop.runbooks.render import Context, RenderError, evaluate, render_chat, render_request
from opsloop.runbooks.versions import Version, content_hash

HEAD = """schema_version: 1
id: restart
version: 1.2.0
title: Restart a service
owners: [U0SRE1]
inputs:
  service: {type: string, pattern: "^[a-z0-9-]+$", required: true}
"""


def load(steps: str, head: str = HEAD) -> None:
    parse((head + "steps:\n" + steps).encode(), "runbooks/restart.yaml", expected_id="restart")


@pytest.mark.parametrize(("steps", "expected"), [
    ("  - {id: check, type: manual}\n",
     "runbooks/restart.yaml: steps[0] (check).title: required"),
    ("  - {id: a, type: manual, title: A}\n  - {id: restart, type: http, request: {url: 'ftp://x'}}\n",
     "runbooks/restart.yaml: steps[1] (restart).request.url: the url must start with https://"),
    ("  - {id: restart, type: http, request: {url: 'https://h/', jsn: 1}}\n",
     "runbooks/restart.yaml: steps[0] (restart).request.jsn: unknown key"),
    ("  - {id: restart, type: http, request: {url: 'https://h/'}, expect: {status: [700]}}\n",
     "runbooks/restart.yaml: steps[0] (restart).expect.status[0]: Input should be less than or equal to 599"),
    ("  - {id: x, type: bogus}\n",
     "runbooks/restart.yaml: steps[0] (x).type: must be one of manual, approval, notify, http"),
    ("  - {id: t, type: notify, channel: ops, message: '{{ inputs.service }'}\n",
     "runbooks/restart.yaml: steps[0] (t).message: template syntax error"),
    ("  - {id: g, type: approval, approvers: [U1], min_approvals: 2}\n",
     "runbooks/restart.yaml: steps[0] (g).min_approvals: 2 distinct approvers are needed but only 1"),
    ("  - {id: g, type: approval, approvers: 'boss'}\n",
     "runbooks/restart.yaml: steps[0] (g).approvers[0]: String should match pattern"),
    ("  - {id: a, type: manual, title: A, requires: [b]}\n  - {id: b, type: manual, title: B}\n",
     "runbooks/restart.yaml: steps[0] (a).requires: 'b' is a later step"),
    ("  - {id: a, type: manual, title: A, requires: [nope]}\n",
     "runbooks/restart.yaml: steps[0] (a).requires: unknown step 'nope'"),
    ("  - {id: a, type: manual, title: A}\n  - {id: a, type: manual, title: B}\n",
     "runbooks/restart.yaml: steps[1] (a).id: the id is already used by steps[0]"),
    ("  - {id: a, type: manual, title: A, when: 'inputs.service =='}\n",
     "runbooks/restart.yaml: steps[0] (a).when: template syntax error"),
])
def test_errors_name_the_file_the_step_and_the_field(steps: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(steps)
    assert any(line.startswith(expected) for line in str(caught.value).splitlines()), str(caught.value)


@pytest.mark.parametrize(("head", "expected"), [
    (HEAD.replace("1.2.0", "1.2"), 'version: write the version as quoted text, e.g. "1.2.0"'),
    (HEAD.replace("1.2.0", "'1.2'"), "version: '1.2' is not a semantic version"),
    (HEAD + "colour: red\n", "colour: unknown key"),
    (HEAD.replace("required: true", "required: true, default: web"),
     "inputs.service.default: a required input has no default"),
    (HEAD.replace('"^[a-z0-9-]+$", required: true', '"^[a-z]+$", default: "Web"'),
     "inputs.service.default: 'Web' does not match the pattern"),
    (HEAD.replace("type: string", "type: integer"), "inputs.service.pattern: only string inputs"),
])
def test_top_level_and_input_errors_are_precise(head: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="runbooks/restart.yaml: " + re.escape(expected)):
        load("  - {id: a, type: manual, title: A}\n", head=head)


def test_the_file_name_must_be_the_id_and_duplicate_keys_are_refused() -> None:
    good = (HEAD + "steps:\n  - {id: a, type: manual, title: A}\n").encode()
    with pytest.raises(ConfigError, match=r"runbooks/other.yaml: id: 'restart' must match the file name"):
        parse(good, "runbooks/other.yaml", expected_id="other")
    with pytest.raises(ConfigError, match="duplicate key 'title'"):
        parse(good + b"title: again\n", "runbooks/restart.yaml")


def test_steps_default_to_file_order_and_requires_overrides() -> None:
    loaded = parse((HEAD + """steps:
  - {id: a, type: manual, title: A}
  - {id: b, type: manual, title: B}
  - {id: c, type: manual, title: C, requires: []}
  - {id: d, type: manual, title: D, requires: [a, c]}
""").encode(), "x")
    rb = loaded.runbook
    assert [rb.prerequisites(i) for i in range(4)] == [[], ["a"], [], ["a", "c"]]
    assert loaded.sha256 == content_hash(loaded.data)


CTX = Context(inputs={"service": "<!channel> & co"}, item={"id": "INC-1", "title": "t"},
              steps={"a": {"status": "done", "outputs": {}}}, secret_names=frozenset({"OPS_API_TOKEN"}))


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ inputs.__class__ }}",
    "{{ item.update({'id': 'x'}) }}",
    "{{ nothing_here }}",
    "{{ inputs.missing }}",
    "{{ steps.zzz.status }}",
    "{{ secrets.OPS_API_TOKEN }}",
    "{{ 'x' * 1000000000 }}",
    "{{ 2 ** 100000 }}",
    "{{ range(10**9) | list }}",
])
def test_sandbox_escapes_undefined_names_and_secrets_in_chat_are_errors(template: str) -> None:
    with pytest.raises(RenderError):
        render_chat(template, CTX, where="steps[0] (a).title")


def test_a_json_body_keeps_typed_values_and_everything_else_renders_as_text() -> None:
    context = Context(inputs={"n": 3, "on": False, "ratio": 0.5, "name": "42"}, item={"id": "INC-1"},
                      secret_names=frozenset({"T"}))
    body = {"n": "{{ inputs.n }}", "on": "{{inputs.on}}", "r": " {{ inputs.ratio }} ", "name": "{{ inputs.name }}",
            "sum": "{{ inputs.n + 1 }}", "text": "n={{ inputs.n }}", "list": ["{{ inputs.n }}"],
            "secret": "{{ secrets.T }}"}
    assert render_request(body, context, where="json", typed=True) == {
        "n": 3, "on": False, "r": 0.5, "name": "42", "sum": 4, "text": "n=3", "list": [3],
        "secret": "⟦secret:T⟧"}
    assert render_request("{{ inputs.n }}", context, where="url") == "3"  # a URL or header stays text


def test_chat_text_escapes_user_values_and_requests_do_not() -> None:
    assert render_chat("{{ inputs.service }}", CTX, where="t") == "&lt;!channel&gt; &amp; co"
    request = render_request({"url": "https://h/{{ item.id }}",
                              "auth": "Bearer {{ secrets.OPS_API_TOKEN }}", "n": [1, "{{ inputs.service }}"]},
                             CTX, where="request")
    assert request == {"url": "https://h/INC-1", "auth": "Bearer ⟦secret:OPS_API_TOKEN⟧",
                       "n": [1, "<!channel> & co"]}
    with pytest.raises(RenderError, match=r"secrets\.NOPE is not declared"):
        render_request("{{ secrets.NOPE }}", CTX, where="request")
    assert evaluate("inputs.service.startswith('<!')", CTX, where="when") is True
    with pytest.raises(RenderError, match="when:"):
        evaluate("undefined_thing == 1", CTX, where="when")


def test_inputs_are_typed_and_checked() -> None:
    rb = parse((HEAD + """  n: {type: integer, default: 3}
  flag: {type: boolean, default: false}
steps:
  - {id: a, type: manual, title: A}
""").encode(), "x").runbook
    assert rb.inputs["n"].accept("12") == 12
    assert rb.inputs["flag"].accept("yes") is True
    for spec, raw in ((rb.inputs["n"], "twelve"), (rb.inputs["flag"], "maybe"),
                      (rb.inputs["service"], "Web; rm -rf /"), (rb.inputs["service"], "a" * 501)):
        with pytest.raises(InvalidInput):
            spec.accept(raw)


def test_versions_compare_like_semver() -> None:
    order = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.0.1", "1.2.0", "1.10.0"]
    parsed = [Version.parse(v) for v in order]
    shuffled = [parsed[i] for i in (4, 7, 0, 2, 6, 1, 5, 3)]
    assert sorted(shuffled) == parsed
    assert Version.parse("1.0.0+build.5") == Version.parse("1.0.0")
    with pytest.raises(ValueError, match="not a semantic version"):
        Version.parse("1.0")
