"""The rollout keys of an http step: validated strictly, and the waves and budget they describe."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from opsloop.rollouts.config import Fleet
from opsloop.runbooks.schema import Runbook

STEP = {"id": "patch", "type": "http", "foreach": "tenants",
        "request": {"url": "https://ops-api.internal/tenants/{{ tenant.id }}/patch"}}


def runbook(**step: object) -> Runbook:
    return Runbook.model_validate({"schema_version": 1, "id": "x", "version": "1.0.0", "title": "x",
                                   "owners": ["U0SRE1"], "steps": [{**STEP, **step}]})


def test_a_foreach_step_gathers_its_keys() -> None:
    step = runbook(select={"tier": "smb", "region": ["eu"]}, max_errors="5%", deadline="24h",
                   waves=[{"name": "canary", "size": 1}, {"rest": True}]).steps[0]
    fleet = step.fleet  # type: ignore[union-attr]
    assert fleet is not None and fleet.deadline is not None and fleet.deadline.total_seconds() == 86400
    assert [t.value for t in fleet.select.tier or []] == ["smb"] and fleet.select.region == ["eu"]
    plain = runbook().steps[0]
    assert plain.fleet == Fleet()  # type: ignore[union-attr]


@pytest.mark.parametrize(("step", "says"), [
    ({"foreach": None, "waves": [{"rest": True}]}, "only a step with `foreach: tenants`"),
    ({"foreach": None, "rollback": {"url": "https://ops-api.internal/x"}}, "only a step with `foreach"),
    ({"waves": [{"size": 1}]}, "the last wave must be {rest: true}"),
    ({"waves": [{"rest": True}, {"rest": True}]}, "only the last wave"),
    ({"waves": [{"size": 1, "percent": 5}, {"rest": True}]}, "exactly one of size"),
    ({"max_errors": "five"}, "write a count"),
    ({"max_errors": "150%"}, "write a count"),
    ({"max_errors": True}, "a count"),
    ({"max_concurrency": 0}, "greater than or equal to 1"),
    ({"select": {"tier": ["gold"]}}, "enterprise"),
    ({"select": {"band": ["sick"]}}, "healthy"),
    ({"select": {"owner": "x"}}, "Extra inputs"),
    ({"outputs": {"x": "$.x"}}, "no outputs"),
    ({"fleet": {}}, "on the step itself"),
])
def test_bad_rollout_keys_are_refused(step: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError) as error:
        runbook(**step)
    assert says in str(error.value)


def test_wave_sizes_and_the_budget() -> None:
    fleet = Fleet.model_validate(yaml.safe_load(
        "{waves: [{name: canary, size: 1}, {percent: 10}, {percent: 50}, {rest: true}], max_errors: '5%'}"))
    assert fleet.wave_sizes(50) == [1, 5, 25, 19]
    assert fleet.wave_sizes(3) == [1, 1, 1, 0]  # a wave may be left empty, never a tenant out
    assert fleet.wave_sizes(0) == [0, 0, 0, 0]
    assert fleet.allowed_errors(50) == 2 and fleet.allowed_errors(10) == 0
    assert Fleet.model_validate({"max_errors": 3}).allowed_errors(10_000) == 3
    assert [fleet.wave_name(i) for i in range(4)] == ["canary", "wave 2", "wave 3", "rest"]
