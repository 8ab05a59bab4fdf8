"""One settings object for every command and flow, validated before any work starts.

Each setting has one name everywhere: the field name is the TOML key, the environment
variable is `CIRCLECI_ANALYTICS_<FIELD>` and the command-line flag is `--<field-with-dashes>`
(the token is the exception: only `$CIRCLECI_TOKEN` or a Prefect Secret block, never a flag,
never the TOML file). Each default lives here, once.

Precedence (highest first): command-line flags (keyword arguments) > environment variables >
the TOML file (`--config PATH`, else `$CIRCLECI_ANALYTICS_CONFIG`, else
`./circleci-analytics.toml` if it exists) > defaults.

Organisations: `orgs` is a list of `{id, slug, projects}` (`[[orgs]]` tables in TOML). The
top-level `org_id`, `org_slug` and `projects` keys are the one-org shorthand. The
highest-priority source that names an org (`orgs`, or `org_id`/`org_slug`) defines the whole
list; the shorthand keys merge with each other across sources like any setting, and a
`projects` list from a source above `orgs` sets the projects of its org(s) (by slug prefix
when there are several).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from circleci_analytics.teams import Team, distinct_names, read_owners_file
from circleci_analytics.warehouse.build import DEFAULT_HEADROOM, DEFAULT_PRICE_PER_CREDIT
from circleci_analytics.warehouse.lease import DEFAULT_WAIT_SECONDS

__all__ = ["ALERT_RULES", "DEFAULT_CONFIG_FILE", "ENV_PREFIX", "TOKEN_ENV", "AlertSettings", "Org", "Settings",
           "SettingsError", "assign_projects", "check_paths", "describe_validation_error", "load_settings"]  # fmt: skip

DEFAULT_CONFIG_FILE = "circleci-analytics.toml"
CONFIG_ENV = "CIRCLECI_ANALYTICS_CONFIG"
ENV_PREFIX = "CIRCLECI_ANALYTICS_"
TOKEN_ENV = "CIRCLECI_TOKEN"
#: The one-org shorthand keys (folded into `orgs`).
SHORTHAND = ("org_id", "org_slug", "projects")

_config_file: ContextVar[Path | None] = ContextVar("circleci_analytics_config_file", default=None)


class SettingsError(ValueError):
    """A configuration problem the user can fix; the message is one line and never holds the token."""


# -- field types -------------------------------------------------------------------------------
def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("not a UUID (find it under Organization Settings > Overview)") from None


_VCS = ("gh", "github", "bb", "bitbucket", "circleci")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _org_slug(value: str) -> str:
    parts = value.split("/")
    if len(parts) != 2 or parts[0] not in _VCS or not _SEGMENT.fullmatch(parts[1]) or parts[1] in (".", ".."):
        raise ValueError(f"not an org slug: expected <vcs>/<org> with <vcs> one of {', '.join(_VCS)} "
                         "(e.g. gh/acme, or circleci/<id> for GitHub-App and GitLab orgs)")  # fmt: skip
    return value


def _http_url(value: str) -> str:
    HttpUrl(value)  # raises a clear error for anything that is not an http(s) URL with a host
    return value.rstrip("/")


def _cron(value: str) -> str:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as e:
        raise ValueError(f"not a cron expression ({e}); e.g. '0 3 * * *' is 03:00 every day") from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
    return value


_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def _block_name(value: str) -> str:
    if not _BLOCK_NAME.fullmatch(value):
        raise ValueError("not a Prefect block name (lowercase letters, digits and dashes)")
    return value


#: Query options of an object-store URI that are credentials: a URI is a setting, and settings
#: are logged, shown in run summaries and stored by Prefect as flow parameters.
_URI_CREDENTIALS = ("access_key", "secret_key", "session_token")


def _no_credentials(value: str) -> str:
    query = value.partition("?")[2].lower()
    if any(f"{key}=" in query for key in _URI_CREDENTIALS):
        raise ValueError("holds credentials in its query string: give them to the machine instead "
                         "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, an AWS profile or an instance role)")  # fmt: skip
    return value


def _s3_uri(value: str) -> str:
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0].split("?", 1)[0]:
        raise ValueError("not an s3:// URI (e.g. s3://bucket/circleci-analytics/published)")
    return _no_credentials(value)


def _path(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmptyPath = Annotated[str, AfterValidator(_path)]


class Org(BaseModel):
    """One CircleCI organisation to pull: its id (usage export) and slug (Insights)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, AfterValidator(_uuid)] = Field(description="Organization id (UUID), for the usage export")
    slug: Annotated[str, AfterValidator(_org_slug)] = Field(description="Org slug, e.g. gh/acme, for Insights")
    projects: list[str] = Field(default_factory=list, description="Project slugs; empty = discover")

    @field_validator("projects")
    @classmethod
    def _valid_project_slugs(cls, slugs: list[str]) -> list[str]:
        from circleci_analytics.connectors.encoding import validate_project_slug

        return [validate_project_slug(slug) for slug in slugs]


def _default_patience() -> dict[str, float]:
    from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE  # on use, as the validators do

    return dict(DEFAULT_PATIENCE)


AlertRule = Literal["credit_anomaly", "forecast_over_budget", "new_flaky_test", "mttr_regression", "run_problem"]
#: Every alert rule (`alerts.rules` enables a subset; README "Alerts" says what each means).
ALERT_RULES: tuple[AlertRule, ...] = get_args(AlertRule)


def _destination(value: SecretStr) -> SecretStr:
    scheme, sep, rest = value.get_secret_value().partition("://")
    if not sep or not rest or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError("not a notification URL (scheme://..., e.g. slack://..., msteams://..., json://host/path, "
                         "mailto://...; see https://github.com/caronc/apprise/wiki)")  # fmt: skip
    return value


class AlertSettings(BaseModel):
    """`[alerts]`: which rules run after each nightly build, their thresholds, where alerts go."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule] = Field(list(ALERT_RULES), description="Alert rules evaluated after each nightly build.")
    #: Apprise URLs. Secret-ish (a webhook URL is its own credential): SecretStr, excluded from
    #: every dump (so never a serialized flow parameter), never logged.
    destinations: list[Annotated[SecretStr, AfterValidator(_destination)]] = Field(
        default_factory=list, exclude=True, repr=False,
        description="Where alerts go: apprise URLs (slack://, msteams://, json://, mailto://, ...).")  # fmt: skip
    dashboard_url: str | None = Field(
        None, description="Base URL of the dashboard linked from alerts (default: the local dashboard_dir)."
    )
    anomaly_lookback_days: int = Field(7, ge=1, description="Alert credit anomalies of the last N days of data.")
    anomaly_min_excess_credits: float = Field(
        0.0, ge=0, description="Ignore anomalies exceeding their threshold by less than this many credits."
    )
    monthly_budget_credits: Decimal | None = Field(
        None, gt=0, description="Each org's monthly credit budget: alert when the month-end forecast exceeds it."
    )
    team_monthly_budget_credits: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict, description="Monthly credit budget per team (team -> credits).")  # fmt: skip
    flaky_min_times_flaked: int = Field(1, ge=1, description="A newly flaky test alerts once it flaked this often.")
    mttr_regression_ratio: float = Field(
        2.0, gt=1, description="Alert when a workflow's MTTR of the last full week is this times the week before's."
    )
    mttr_min_recoveries: int = Field(3, ge=1, description="... with at least this many recoveries in each week.")
    run_statuses: list[Literal["failed", "partial"]] = Field(["failed", "partial"],
                                                             description="Run outcomes that alert.")  # fmt: skip
    max_delivery_attempts: int = Field(7, ge=1, description="Nights an undelivered alert is retried.")


class Settings(BaseSettings):
    """Where to read from, where to write to, how to price and judge the results, when to run."""

    # Defaults are valid by construction; validating only what was given keeps `sql` from
    # importing the connectors for the look-back bound.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", populate_by_name=True,
                                      validate_default=False, env_nested_delimiter="__")  # fmt: skip

    # -- source --
    api_base_url: Annotated[str, AfterValidator(_http_url)] = Field(
        "https://circleci.com/api/v2", description="CircleCI API v2 base URL.")  # fmt: skip
    #: A *personal* API token, from $CIRCLECI_TOKEN (or passed in-process). Excluded from every
    #: dump, so it is never a serialized flow parameter; SecretStr masks it in repr and errors.
    token: SecretStr | None = Field(None, validation_alias=TOKEN_ENV, exclude=True, repr=False,
                                    description="Personal API token ($CIRCLECI_TOKEN only).")  # fmt: skip
    token_secret_block: Annotated[str, AfterValidator(_block_name)] | None = Field(
        None, description="Prefect Secret block holding the token, when $CIRCLECI_TOKEN is not set.")  # fmt: skip
    orgs: list[Org] = Field(default_factory=list, description="Organisations to pull ([[orgs]] tables).")
    # -- outputs --
    lake_root: Annotated[NonEmptyPath, AfterValidator(_no_credentials)] = Field(
        "data/lake", description="Lake root: a folder or s3://bucket/prefix."
    )
    warehouse_path: NonEmptyPath = Field("data/warehouse.duckdb", description="DuckDB warehouse file.")
    dashboard_dir: NonEmptyPath = Field("data/dashboard", description="Where the dashboard HTML goes.")
    render_dashboard: bool = Field(True, description="Render the dashboard after each run.")
    publish_uri: Annotated[str, AfterValidator(_s3_uri)] | None = Field(
        None, description="s3:// prefix the warehouse and dashboard are published to after each build "
                          "(default with an s3:// lake: a 'published' prefix beside the lake's).")  # fmt: skip
    # -- marts --
    price_per_credit: Decimal = Field(DEFAULT_PRICE_PER_CREDIT, gt=0, decimal_places=10,
                                      description="USD per credit (25,000 credits for 15 USD).")  # fmt: skip
    rightsizing_headroom: float = Field(DEFAULT_HEADROOM, gt=0, le=1,
                                        description="Right-sizing: largest p95 share of a smaller class.")  # fmt: skip
    teams: list[Team] = Field(default_factory=list, description="Team ownership rules, first match wins ([[teams]] "
                                                                 "tables: name, projects and jobs globs).")  # fmt: skip
    owners_file: NonEmptyPath | None = Field(None, description="A TOML ([[teams]]) or YAML (teams:) file of the team "
                                                               "ownership rules, instead of [[teams]] here.")  # fmt: skip
    #: v1.4.0 opens in DuckDB 1.4, 1.5 and 2.x (BI tools bundle 1.4-1.5); a test checks it equals
    #: warehouse.DEFAULT_STORAGE_VERSION.
    warehouse_storage_version: str = Field(
        "v1.4.0", pattern=r"^v\d+\.\d+\.\d+$", description="DuckDB storage format of the warehouse file (e.g. v1.4.0)."
    )
    # -- extraction --
    initial_lookback_days: int = Field(30, ge=1, description="First run only: days of history to pull.")
    overlap_days: int = Field(2, ge=0, description="Days re-read before the last cursor on later runs.")
    tests_lookback_days: int = Field(14, ge=1, description="Probe test results of jobs this many days old.")
    snapshot_refresh_days: int = Field(
        7,
        ge=1,
        description="Re-read slowly changing Insights snapshots (workflow "
        "summaries, job metrics and time series, test metrics) after this many days.",
    )
    max_concurrency: int = Field(8, ge=1, description="API requests in flight at once.")
    export_poll_seconds: float = Field(360.0, gt=0, description="Seconds between usage-export status polls.")
    lease_wait_seconds: float = Field(DEFAULT_WAIT_SECONDS, ge=0,
                                      description="How long a run waits for another run's hold on the lake.")  # fmt: skip
    rate_limits: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="Requests per second per endpoint family (0 = unlimited).")  # fmt: skip
    rate_limit_patience_seconds: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: _default_patience(), description="Seconds one request may wait out 429s per "
        "endpoint family before its project is given up (families not named keep their default).")  # fmt: skip
    job_include: list[str] = Field(default_factory=list, description="Job-name globs to probe for tests (repeatable).")
    job_exclude: list[str] = Field(default_factory=list, description="Job-name globs never probed (repeatable).")
    #: The clock; None = real time (the demo and tests pin it to the simulator's).
    now: datetime | None = Field(None, description="Pretend the current time is this (simulator, tests).")
    # -- schedule (`serve`) --
    schedule_cron: Annotated[str, AfterValidator(_cron)] = Field("0 3 * * *", description="Nightly cron schedule.")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field("UTC", description="Time zone of the schedule.")
    prefect_dir: NonEmptyPath = Field(
        "data/prefect", description="`serve`: home and database of the local Prefect server."
    )
    prefect_port: int = Field(0, ge=0, le=65535, description="`serve`: loopback port of the local Prefect server "
                                                             "(0 = a free one).")  # fmt: skip
    # -- alerts --
    alerts: AlertSettings = Field(default_factory=AlertSettings,
                                  description="Alert rules, thresholds, destinations ([alerts] table).")  # fmt: skip

    @field_validator("initial_lookback_days")
    @classmethod
    def _within_export_history(cls, value: int) -> int:
        from circleci_analytics.connectors.usage_export.windows import MAX_LOOKBACK

        if value > MAX_LOOKBACK.days:
            raise ValueError(f"the usage export keeps {MAX_LOOKBACK.days} days; use at most that")
        return value

    @field_validator("rate_limits", "rate_limit_patience_seconds")
    @classmethod
    def _known_families(cls, value: dict[str, float]) -> dict[str, float]:
        from circleci_analytics.connectors.ratelimit import FAMILIES

        unknown = sorted(set(value) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown endpoint family {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
        return value

    @field_validator("rate_limit_patience_seconds")
    @classmethod
    def _patience_defaults(cls, value: dict[str, float]) -> dict[str, float]:
        return {**_default_patience(), **value}

    @field_validator("orgs")
    @classmethod
    def _distinct_orgs(cls, value: list[Org]) -> list[Org]:
        ids = [o.id for o in value]
        if len(set(ids)) != len(ids):
            raise ValueError("the same org id is listed twice")
        return value

    @model_validator(mode="after")
    def _owners(self) -> Settings:
        """The team rules: [[teams]], or read from `owners_file` (not both; a dump of these
        settings, which carries both, loads again)."""
        if self.owners_file is not None:
            from_file = read_owners_file(self.owners_file)
            if self.teams and self.teams != from_file:
                raise ValueError("set the team rules either as [[teams]] or in owners_file, not both")
            self.teams = from_file
        distinct_names(self.teams)
        return self

    @field_validator("token")
    @classmethod
    def _normalized_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Surrounding whitespace stripped; control characters and non-ASCII refused (the
        message names the problem, never the value)."""
        from circleci_analytics.connectors.auth import normalize_token

        return None if value is None else SecretStr(normalize_token(value.get_secret_value()))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_LayeredSource(settings_cls, init_settings, env_settings),)


# -- sources ---------------------------------------------------------------------------------
class _OneOrgEnv(BaseSettings):
    """The one-org shorthand as environment variables (parsed by pydantic-settings)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)
    org_id: str | None = None
    org_slug: str | None = None
    projects: list[str] | None = None


def config_path() -> Path | None:
    """The TOML file in use: `load_settings(path)`, else $CIRCLECI_ANALYTICS_CONFIG, else
    ./circleci-analytics.toml if it exists."""
    explicit = _config_file.get() or os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SettingsError(f"config file not found: {explicit}" if not path.exists()
                                else f"config file is not a file: {explicit}")  # fmt: skip
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file as a dict; syntax errors and unknown keys as one clear line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: invalid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"{path}: cannot read it: {e}") from None
    known = set(Settings.model_fields) | set(SHORTHAND)
    for key in data:
        if key in ("token", TOKEN_ENV):
            raise SettingsError(f"{path}: the token is never read from a file: export {TOKEN_ENV}, or name a "
                                "Prefect Secret block with token_secret_block")  # fmt: skip
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise SettingsError(
                f"{path}: unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    return data


class _LayeredSource(PydanticBaseSettingsSource):
    """Flags (init kwargs) > environment > TOML file, merged key by key, with the org rules."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource,
                 env: PydanticBaseSettingsSource) -> None:  # fmt: skip
        super().__init__(settings_cls)
        self.init, self.env = init, env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        shorthand_env = {k: v for k, v in _OneOrgEnv().model_dump().items() if v is not None}
        layers = [  # highest priority first
            ("the command line", dict(self.init())),
            ("the environment", {**self.env(), **shorthand_env}),
            (str(path), read_toml(path) if path else {}),
        ]
        orgs = _resolve_orgs(layers)
        merged: dict[str, Any] = {}
        for _, layer in reversed(layers):
            for key, value in layer.items():  # a nested table ([alerts]) merges key by key
                below = merged.get(key)
                nested = key in _NESTED and isinstance(value, dict) and isinstance(below, dict)
                merged[key] = {**below, **value} if nested and isinstance(below, dict) else value
        if orgs is not None:
            merged["orgs"] = orgs
        for key in ("token", TOKEN_ENV):  # masked from here on, so no error can echo it
            if isinstance(merged.get(key), str):
                merged[key] = SecretStr(merged[key])
        return merged


#: Settings that are tables of their own, merged key by key across sources.
_NESTED = frozenset(n for n, f in Settings.model_fields.items()
                    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))  # fmt: skip


def _resolve_orgs(layers: list[tuple[str, dict[str, Any]]]) -> list[Any] | None:
    """Fold `orgs` and the one-org shorthand of every layer into one org list (rules in the
    module docstring), removing those keys from the layers. None when no layer names an org."""

    def has(layer: dict[str, Any], key: str) -> bool:
        return layer.get(key) is not None

    top = next((i for i, (_, layer) in enumerate(layers) if any(has(layer, k) for k in ("orgs", "org_id", "org_slug"))),
               None)  # fmt: skip
    projects_at = next((i for i, (_, layer) in enumerate(layers) if has(layer, "projects")), None)
    picked = {k: next((layer[k] for _, layer in layers if has(layer, k)), None) for k in SHORTHAND}
    top_source, top_layer = layers[top] if top is not None else ("", {})
    top_orgs, top_shorthand = top_layer.get("orgs"), has(top_layer, "org_id") or has(top_layer, "org_slug")
    for _, layer in layers:
        for key in ("orgs", *SHORTHAND):
            layer.pop(key, None)
    if top is None:
        if projects_at is not None:
            raise SettingsError(f"projects are set in {layers[projects_at][0]} but no organisation is: "
                                "set org_id and org_slug, or [[orgs]]")  # fmt: skip
        return None
    if top_orgs is None:  # the one-org shorthand
        for key, other in (("org_id", "org_slug"), ("org_slug", "org_id")):
            if picked[key] is None:
                raise SettingsError(f"{other} is set but {key} is not: set --{key.replace('_', '-')}, "
                                    f"{ENV_PREFIX}{key.upper()} or {key} in the TOML file")  # fmt: skip
        return [{"id": picked["org_id"], "slug": picked["org_slug"], "projects": picked["projects"] or []}]
    if top_shorthand:
        raise SettingsError(f"{top_source}: set the organisations either as orgs (--org, [[orgs]]) or as "
                            "org_id/org_slug, not both")  # fmt: skip
    orgs = (
        [o.model_dump() if isinstance(o, BaseModel) else o for o in top_orgs]
        if isinstance(top_orgs, list)
        else top_orgs
    )
    if projects_at is not None and projects_at < top:
        return assign_projects(orgs, picked["projects"] or [], layers[projects_at][0])
    if projects_at == top:
        raise SettingsError(f"{top_source}: top-level projects together with orgs; list each org's projects "
                            "in its own [[orgs]] table")  # fmt: skip
    return orgs


def assign_projects(orgs: list[Any], projects: list[str], source: str) -> list[Any]:
    """Give `projects` to the one org, or to each org by slug prefix (`gh/acme/web` -> `gh/acme`)."""
    if not isinstance(orgs, list) or not all(isinstance(o, dict) for o in orgs):
        return orgs  # let validation name the problem
    if len(orgs) == 1:
        return [{**orgs[0], "projects": list(projects)}]
    by_slug = {o.get("slug"): {**o, "projects": []} for o in orgs}
    for project in projects:
        owner = by_slug.get("/".join(str(project).split("/")[:2]))
        if owner is None:
            raise SettingsError(f"project {project!r} (from {source}) belongs to none of the orgs "
                                f"{', '.join(map(str, by_slug))}; list it in its org's [[orgs]] table")  # fmt: skip
        owner["projects"].append(project)
    return list(by_slug.values())


# -- loading and errors ----------------------------------------------------------------------
@contextmanager
def _using_config(path: str | Path | None) -> Iterator[None]:
    token = _config_file.set(Path(path) if path else None)
    try:
        yield
    finally:
        _config_file.reset(token)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from flags (`overrides`; None and empty values ignored), env, TOML file and defaults.

    Raises `SettingsError` (one clear line) for a missing or malformed file, an unknown key
    or an invalid value.
    """
    flags = {k: v for k, v in overrides.items() if v is not None and v != () and v != []}
    with _using_config(config_file):
        try:
            return Settings(**flags)
        except ValidationError as e:
            raise SettingsError(describe_validation_error(e)) from None
        except _SourceError as e:  # an environment variable that is not valid JSON for a list
            raise SettingsError(f"invalid configuration: {e}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming every invalid setting and why; the token's value is never shown."""
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        loc = loc.replace(TOKEN_ENV, "token")
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown setting")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        # never echo a credential (nor a URI refused for holding one)
        secret = "token" in loc or "destinations" in loc or "credentials" in msg
        shown = "" if secret or isinstance(err.get("input"), dict | list | SecretStr) else f" (got {err['input']!r})"
        parts.append(f"{loc}: {msg}{shown}" if loc else msg)
    return "invalid configuration: " + "; ".join(parts)


# -- paths -----------------------------------------------------------------------------------
def _local(path: str) -> Path | None:
    """A local path, or None for an object-store URL (checked when it is used)."""
    if "://" in path and not path.startswith("file://"):
        return None
    return Path(path.removeprefix("file://")).expanduser()


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_folder(name: str, raw: str) -> None:
    path = _local(raw)
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name} {raw} is a file, not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise SettingsError(f"{name} {raw} cannot be created: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise SettingsError(f"{name} {raw} is not writable ({base} is read-only for this user)")


def _writable_file(name: str, raw: str) -> None:
    path = _local(raw)
    if path is None:
        return
    if path.is_dir():
        raise SettingsError(f"{name} {raw} is a folder; give a file path such as {path / 'warehouse.duckdb'}")
    _writable_folder(f"{name}'s folder", str(path.parent))


def check_paths(settings: Settings, *, lake: bool = True, warehouse: bool = True, dashboard: bool = True,
                prefect: bool = False) -> None:  # fmt: skip
    """Refuse, before anything is written, output paths that cannot work: a file where a
    folder goes (or the reverse), or a location this user cannot write. Creates nothing."""
    if lake:
        _writable_folder("lake_root", settings.lake_root)
    if warehouse:
        _writable_file("warehouse_path", settings.warehouse_path)
    if dashboard and settings.render_dashboard:
        _writable_folder("dashboard_dir", settings.dashboard_dir)
    if prefect:
        _writable_folder("prefect_dir", settings.prefect_dir)
