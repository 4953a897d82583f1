"""Environment settings (SPEC: Environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    env: Literal["development", "production"] = Field(
        "development", validation_alias=_env("OPSLOOP_ENV")
    )
    log_level: str = Field("WARNING", validation_alias=_env("OPSLOOP_LOG_LEVEL"))
    # seconds between timer sweeps; a timer fires at most this late (plus the sweep itself)
    sweep_interval: float = Field(0.25, gt=0, le=60, validation_alias=_env("OPSLOOP_SWEEP_INTERVAL"))

    @property
    def playbooks(self) -> Path:
        return self.playbooks_dir if self.playbooks_dir is not None else self.config.parent / "playbooks"

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.env != "production":
            return self
        for name in ("slack_bot_token", "slack_signing_secret"):
            value = getattr(self, name)
            if value is None or value.get_secret_value().strip().lower() in _PLACEHOLDERS:
                raise ValueError(f"{name.upper()} must be set to a real value when OPSLOOP_ENV=production")
        return self
