"""manifest.yml: valid for Slack, and exactly what the app listens to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.bootstrap import Services
from bot.settings import Settings
from bot.slack.app import SlackApp, create_slack_app
from tests.support import ROOT

SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"
REQUEST_URL = "https://opsloop.example.com/slack/events"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return loaded


@pytest.fixture
def slack_app(slack_services: Services, slack_settings: Settings) -> SlackApp:
    return create_slack_app(slack_services, slack_settings)


def _schema() -> dict[str, Any]:
    path = SCHEMA if SCHEMA.exists() else Path("/work/shared/slack/manifest.schema.1.0.0.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_the_manifest_validates_against_slacks_schema(manifest: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(_schema()).validate(manifest)
    assert manifest["_metadata"]["major_version"] == 1


def test_the_schema_check_can_fail(manifest: dict[str, Any]) -> None:
    manifest["features"]["slash_commands"][0]["command"] = "incident"  # no leading slash
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema()).validate(manifest)


@SQLITE_ONLY
def test_slash_commands_are_exactly_the_registered_listeners(
    manifest: dict[str, Any], slack_app: SlackApp
) -> None:
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(declared) == sorted(slack_app.commands)
    assert len(set(declared)) == len(declared)


@SQLITE_ONLY
def test_interactivity_and_events_are_declared_iff_listened_to(
    manifest: dict[str, Any], slack_app: SlackApp
) -> None:
    settings = manifest["settings"]
    assert settings.get("interactivity", {}).get("is_enabled", False) == bool(
        slack_app.actions or slack_app.views)
    assert sorted(settings.get("event_subscriptions", {}).get("bot_events", [])) == sorted(slack_app.events)


def test_every_request_url_is_the_one_slack_events_route(manifest: dict[str, Any]) -> None:
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls += [manifest["settings"]["interactivity"]["request_url"],
             manifest["settings"]["event_subscriptions"]["request_url"]]
    assert set(urls) == {REQUEST_URL}


def test_scopes_are_the_minimum_the_features_use(manifest: dict[str, Any]) -> None:
    # one line per feature; a new scope must come with the feature that needs it
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted([
        "commands", "chat:write", "chat:write.public", "channels:manage", "usergroups:read",
        "app_mentions:read", "files:write", "users:read", "users:read.email", "canvases:write",
    ])
    assert "user" not in manifest["oauth_config"]["scopes"]
