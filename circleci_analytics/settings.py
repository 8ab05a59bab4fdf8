"""One settings object for every command and flow.

Precedence (highest first): command-line flags > environment variables > the TOML file
(`--config PATH`, else `$CIRCLECI_ANALYTICS_CONFIG`, else `./circleci-analytics.toml` if it
exists) > defaults. Environment variables are `CIRCLECI_ANALYTICS_<FIELD>` (e.g.
`CIRCLECI_ANALYTICS_LAKE_ROOT`), except the token, which is read from `CIRCLECI_TOKEN`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from circleci_analytics.connectors.encoding import validate_project_slug

__all__ = ["Settings", "load_settings", "DEFAULT_CONFIG_FILE"]

DEFAULT_CONFIG_FILE = "circleci-analytics.toml"


class Settings(BaseSettings):
    """Where to read from, where to write to, and how to price and judge the results."""

    model_config = SettingsConfigDict(env_prefix="CIRCLECI_ANALYTICS_", extra="forbid", populate_by_name=True)

    api_base_url: str = "https://circleci.com/api/v2"
    #: A *personal* API token. Never logged or written anywhere (SecretStr masks it).
    token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("CIRCLECI_TOKEN", "token"))
    org_id: str | None = None
    org_slug: str | None = None
    #: Project slugs; empty means "discover the org's projects".
    projects: list[str] = Field(default_factory=list)
    lake_root: str = "data/lake"
    warehouse_path: str = "data/warehouse.duckdb"
    dashboard_dir: str = "data/dashboard"
    price_per_credit: float = 0.0006
    rightsizing_headroom: float = 0.8
    #: DuckDB storage format of the warehouse file; v1.4.0 opens in DuckDB 1.4, 1.5 and 2.x
    #: (BI tools bundle 1.4-1.5). Default = warehouse.DEFAULT_STORAGE_VERSION (a test checks).
    warehouse_storage_version: str = "v1.4.0"
    #: First run only: days of usage export and workflow runs to pull (later runs are incremental).
    initial_lookback_days: int = 30
    overlap_days: int = 2
    tests_lookback_days: int = 14
    max_concurrency: int = 8
    export_poll_seconds: float = 360.0
    job_include: list[str] = Field(default_factory=list)
    job_exclude: list[str] = Field(default_factory=list)
    schedule_cron: str = "0 3 * * *"
    #: Time zone of `schedule_cron` (`serve`).
    timezone: str = "UTC"

    @field_validator("projects")
    @classmethod
    def _valid_project_slugs(cls, slugs: list[str]) -> list[str]:
        return [validate_project_slug(slug) for slug in slugs]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("_CIRCLECI_ANALYTICS_TOML") or ""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from flags (`overrides`, None values ignored), env, TOML file and defaults."""
    path = config_file or os.environ.get("CIRCLECI_ANALYTICS_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"config file not found: {path}")
    previous = os.environ.get("_CIRCLECI_ANALYTICS_TOML")
    os.environ["_CIRCLECI_ANALYTICS_TOML"] = str(path or "")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None and v != ()})
    finally:
        if previous is None:
            os.environ.pop("_CIRCLECI_ANALYTICS_TOML", None)
        else:
            os.environ["_CIRCLECI_ANALYTICS_TOML"] = previous
