"""manifest.yml is a valid Slack manifest and declares exactly what opsloop listens to."""

from __future__ import annotations

import json

import jsonschema
import yaml

from bot.bootstrap import Services
from tests.support import ROOT

SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(manifest(), schema)


def test_manifest_commands_are_the_commands_opsloop_answers(services: Services) -> None:
    declared = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert declared == set(services.commands.names)
