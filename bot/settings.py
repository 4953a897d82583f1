"""Environment settings (SPEC: Environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsloop.table import Sources

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "xoxb-your-token", "xapp-your-token", "todo"}


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///opsloop.db", validation_alias=_env("OPSLOOP_DATABASE_URL"))
    config: Path = Field(Path("opsloop.yml"), validation_alias=_env("OPSLOOP_CONFIG"))
    runbooks_dir: Path = Field(Path("runbooks"), validation_alias=_env("OPSLOOP_RUNBOOKS_DIR"))
    # CSM playbooks; default: the `playbooks` folder beside the policy file
    playbooks_dir: Path | None = Field(None, validation_alias=_env("OPSLOOP_PLAYBOOKS_DIR"))
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("OPSLOOP_SLACK_API_URL"))
    smtp_url: str | None = Field(None, validation_alias=_env("OPSLOOP_SMTP_URL"))
    # the Ed25519 private key (PEM) that signs audit checkpoints; kept out of the database
    audit_signing_key: Path | None = Field(None, validation_alias=_env("OPSLOOP_AUDIT_SIGNING_KEY"))
    # signs the links to tenants' status pages (OPSLOOP_STATUS_KEY); unset: a key kept in the database
    status_key: SecretStr | None = Field(None, validation_alias=_env("OPSLOOP_STATUS_KEY"))
    env: Literal["development", "production"] = Field(
        "development", validation_alias=_env("OPSLOOP_ENV")
    )
    log_level: str = Field("WARNING", validation_alias=_env("OPSLOOP_LOG_LEVEL"))
    # seconds between timer sweeps; a timer fires at most this late (plus the sweep itself)
    sweep_interval: float = Field(0.25, gt=0, le=60, validation_alias=_env("OPSLOOP_SWEEP_INTERVAL"))

    @field_validator("audit_signing_key", mode="before")
    @classmethod
    def _unset_when_blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("status_key", mode="before")
    @classmethod
    def _status_key(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and (len(value) < 32 or value.strip().lower() in _PLACEHOLDERS):
            raise ValueError("OPSLOOP_STATUS_KEY must be at least 32 random characters "
                             "(e.g. the output of `openssl rand -base64 32`), or unset")
        return value

    @property
    def sources(self) -> Sources:
        """What the core is built from (the policy file, runbooks, playbooks, the database)."""
        return Sources(config=self.config, runbooks_dir=self.runbooks_dir, database_url=self.database_url,
                       playbooks_dir=self.playbooks_dir)

    @property
    def playbooks(self) -> Path:
        return self.sources.playbooks

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.env != "production":
            return self
        for name in ("slack_bot_token", "slack_signing_secret"):
            value = getattr(self, name)
            if value is None or value.get_secret_value().strip().lower() in _PLACEHOLDERS:
                raise ValueError(f"{name.upper()} must be set to a real value when OPSLOOP_ENV=production")
        return self
