"""The `circleci-analytics` command line: parses arguments, calls library code, maps errors
to messages and exit codes (0 ok, 1 pipeline failure, 2 user error).

Settings flags are generated from `Settings`' fields (`--<field-with-dashes>`, help and
bounds from the field), so a flag, its TOML key and its environment variable never drift
apart. Everything a run needs is validated before Prefect starts or anything is written.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, get_origin

import click

from circleci_analytics.settings import (
    ENV_PREFIX,
    TOKEN_ENV,
    Settings,
    SettingsError,
    assign_projects,
    check_paths,
    load_settings,
)
from circleci_analytics.warehouse.lease import LeaseError

# Prefect's ephemeral server: first start on a fresh PREFECT_HOME is slow, and there is no
# internet for telemetry. Set before anything imports prefect.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

__all__ = ["main", "cli"]


class _State:
    debug = False


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-06-01T12:00:00Z)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circleci-analytics")
@click.option("--debug", is_flag=True, help="Show the full traceback of an unexpected error.")
def cli(debug: bool) -> None:
    """CircleCI analytics: credits, flaky tests and MTTR from the CircleCI API into
    Parquet, DuckDB and a dashboard.

    Every setting has one name: the flag --lake-root is the TOML key lake_root and the
    environment variable CIRCLECI_ANALYTICS_LAKE_ROOT (flags > environment > TOML file).
    The token comes only from CIRCLECI_TOKEN or a Prefect Secret block.

    \b
    Example:
      circleci-analytics demo            # whole pipeline on the built-in simulator
    """
    _State.debug = debug


# -- simulator -------------------------------------------------------------------------------
@cli.group()
def simulator() -> None:
    """The built-in CircleCI API simulator (ground truth for tests and the demo).

    \b
    Example:
      circleci-analytics simulator serve --port 8765 --scale demo
      circleci-analytics simulator truth --scale tiny --out data/truth
    """


def _sim_options(f):
    f = click.option("--seed", type=int, default=42, show_default=True, help="History seed.")(f)
    f = click.option("--scale", "preset", type=click.Choice(["tiny", "demo", "large"]), default="demo",
                     show_default=True, help="Size of the simulated org.")(f)  # fmt: skip
    f = click.option("--now", default=None, help="Simulated current time (ISO 8601); default: real now.")(f)
    return f


@simulator.command("serve")
@_sim_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Divide rate-limit periods (3600: '10 per hour' becomes 10 per second).")  # fmt: skip
@click.option("--latency", type=float, default=0.0, show_default=True, help="Injected seconds per API call.")
@click.option("--github-app-org", "github_app_orgs", multiple=True, metavar="NAME",
              help="Also serve a GitHub-App org of this name (slug circleci/<orgId>); repeatable.")  # fmt: skip
def simulator_serve(seed: int, preset: str, now: str | None, host: str, port: int, time_scale: float, latency: float,
                    github_app_orgs: tuple[str, ...]) -> None:  # fmt: skip
    """Serve the simulated CircleCI API v2 on loopback.

    \b
    Example:
      circleci-analytics simulator serve --port 8765 --seed 7 --scale demo
      curl -H "Circle-Token: $(circleci-analytics simulator token)" \\
           http://127.0.0.1:8765/api/v2/me
      circleci-analytics simulator serve --github-app-org acme-labs   # two orgs
    """
    from circleci_analytics.simulator import OrgSpec, SimConfig, Simulator
    from circleci_analytics.simulator.server import serve

    config = SimConfig(seed=seed, preset=preset, now=_parse_now(now), time_scale=time_scale, latency_seconds=latency,
                       extra_orgs=tuple(OrgSpec(name) for name in github_app_orgs))  # fmt: skip
    try:
        sim = Simulator(config)
    except ValueError as e:  # e.g. an org name given twice
        raise click.BadParameter(str(e), param_hint="--github-app-org") from None
    orgs = "  ".join(f"org={o.slug} ({o.id})" for o in sim.orgs)
    click.echo(f"CircleCI simulator: http://{host}:{port}/api/v2  {orgs}  "
               f"projects={len(sim.projects)}  Ctrl-C to stop", err=True)  # fmt: skip
    serve(sim, host=host, port=port)


@simulator.command("token")
def simulator_token() -> None:
    """Print the personal API token the simulator accepts.

    \b
    Example:
      export CIRCLECI_TOKEN=$(circleci-analytics simulator token)
    """
    from circleci_analytics.simulator import DEFAULT_TOKEN

    click.echo(DEFAULT_TOKEN)


@simulator.command("truth")
@_sim_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data/truth", show_default=True)
def simulator_truth(seed: int, preset: str, now: str | None, out_dir: str) -> None:
    """Write the simulator's ground truth: tables (Parquet) and metrics (JSON).

    \b
    Example:
      circleci-analytics simulator truth --scale tiny --seed 7 --now 2026-06-01T12:00:00Z --out /tmp/truth
    """
    from circleci_analytics.simulator import SimConfig, Simulator, write_truth

    sim = Simulator(SimConfig(seed=seed, preset=preset, now=_parse_now(now)))
    counts = write_truth(sim.history, out_dir)
    for name, n in counts.items():
        click.echo(f"{name:>14}: {n}")
    click.echo(f"written to {Path(out_dir).resolve()}")


# -- settings flags ----------------------------------------------------------------------------
class UserError(click.ClickException):
    """A problem the user can fix (exit code 2)."""

    exit_code = EXIT_USAGE


class _Option(click.Option):
    """An option whose old spellings (`hidden_aliases`) still parse but are not shown in --help."""

    def __init__(self, *args: Any, hidden_aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = set(hidden_aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = self.opts
        self.opts = [o for o in shown if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


#: Old flag spellings, still accepted.
_ALIASES = {"api_base_url": ("--api-url",), "lake_root": ("--lake",), "warehouse_path": ("--warehouse",),
            "initial_lookback_days": ("--lookback-days",), "schedule_cron": ("--cron",)}  # fmt: skip


def setting_options(*names: str, aliases: dict[str, tuple[str, ...]] | None = None):
    """Click options for these Settings fields: `--<field-with-dashes>`, help and default from
    the field; None (not given) leaves the setting to the environment, the TOML file or its default."""
    aliases = {**_ALIASES, **(aliases or {})}

    def decorate(f):
        for name in reversed(names):
            field = Settings.model_fields[name]
            flag = "--" + name.replace("_", "-")
            kwargs: dict[str, Any] = {"default": None}
            if field.annotation is bool:
                decls, kwargs = [f"{flag}/--no-{flag[2:]}"], {"default": None}
            else:
                decls = [flag]
                if get_origin(field.annotation) is list:
                    kwargs["multiple"], kwargs["default"] = True, ()
                elif field.annotation in (int, float):
                    kwargs["type"] = field.annotation
                elif field.annotation is Decimal:
                    kwargs["metavar"] = "DECIMAL"
            default = "" if field.default in (None, "") or field.default_factory else f" [default: {field.default}]"
            f = click.option(*decls, *aliases.get(name, ()), name, cls=_Option, hidden_aliases=aliases.get(name, ()),
                             help=f"{field.description}{default}", **kwargs)(f)  # fmt: skip
        return f

    return decorate


def _config_option(f):
    return click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                        help="TOML settings file (default: $CIRCLECI_ANALYTICS_CONFIG, else "
                             "./circleci-analytics.toml if present).")(f)  # fmt: skip


def _parse_org(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[dict[str, str]]:
    out = []
    for value in values:
        slug, sep, org_id = value.rpartition("=")
        if not sep or not slug or not org_id:
            raise click.BadParameter(f"{value!r} is not SLUG=UUID (e.g. gh/acme=1c3f0a5e-0000-4000-8000-000000000000)")
        out.append({"slug": slug, "id": org_id})
    return out


def _org_options(f):
    f = click.option("--project", "projects", multiple=True,
                     help="Project slug (repeatable); default: discover. With several orgs, each goes to the "
                          "org its slug starts with.")(f)  # fmt: skip
    f = click.option("--org-slug", default=None, help="One organisation's slug, e.g. gh/acme, with --org-id.")(f)
    f = click.option("--org-id", default=None, help="One organisation's id (UUID), with --org-slug.")(f)
    f = click.option("--org", "orgs", multiple=True, callback=_parse_org, metavar="SLUG=UUID",
                     help="An organisation: its slug and id (repeatable for several orgs).")(f)  # fmt: skip
    return f


#: The settings of an extraction run, as flags.
PIPELINE = ("api_base_url", "lake_root", "warehouse_path", "dashboard_dir", "render_dashboard", "price_per_credit",
            "rightsizing_headroom", "initial_lookback_days", "overlap_days", "tests_lookback_days", "max_concurrency",
            "export_poll_seconds", "job_include", "job_exclude", "token_secret_block", "warehouse_storage_version",
            "lease_wait_seconds", "snapshot_refresh_days", "publish_uri", "owners_file")  # fmt: skip


def _settings(config: str | None, **flags: Any) -> Settings:
    """Settings from flags, environment, TOML file and defaults, or exit 2 with one line."""
    orgs, projects = flags.pop("orgs", ()), flags.get("projects") or ()
    if orgs:
        try:
            flags["orgs"] = assign_projects(list(orgs), list(projects), "the command line") if projects else list(orgs)
        except SettingsError as e:
            raise UserError(str(e)) from None
        flags.pop("projects", None)
    try:
        return load_settings(config, **flags)
    except SettingsError as e:
        raise UserError(str(e)) from None


def _ready_to_extract(s: Settings, **paths: bool) -> None:
    """A token (or a Secret block), at least one org and usable output paths, or exit 2."""
    if s.token is None and not s.token_secret_block:
        raise UserError(f"no CircleCI token: export {TOKEN_ENV}=<personal API token> (create one at "
                        "https://app.circleci.com/settings/user/tokens), or name a Prefect Secret block "
                        "with --token-secret-block")  # fmt: skip
    if not s.orgs:
        raise UserError(f"set the organisation: --org SLUG=UUID (repeatable), or --org-id (UUID, Organization "
                        f"Settings > Overview) and --org-slug (e.g. gh/acme), or {ENV_PREFIX}ORG_ID / "
                        f"{ENV_PREFIX}ORG_SLUG, or [[orgs]] in the TOML file")  # fmt: skip
    _check_paths(s, **paths)


def _check_paths(s: Settings, **which: bool) -> None:
    try:
        check_paths(s, **which)
    except SettingsError as e:
        raise UserError(str(e)) from None


def _print_summary(summary, started: float) -> None:
    import time

    click.echo(summary.markdown())
    click.echo(f"\nfinished in {time.perf_counter() - started:,.1f} s")


def _exit_for(summary) -> None:
    if summary.status == "failed":
        sys.exit(EXIT_FAILURE)
    if summary.status == "partial":
        click.echo(
            f"partial success: {'; '.join(summary.partial_reasons())} (see above; the next run heals it)", err=True
        )
        sys.exit(EXIT_FAILURE)


def _run_flow(coro):
    import asyncio

    state = asyncio.run(coro)
    result = state.result(raise_on_failure=False) if hasattr(state, "result") else state
    if isinstance(result, BaseException):
        raise result
    return result


def _api_error(e: Exception) -> click.ClickException:
    from circleci_analytics.connectors import AuthError, NotFound, TransportFailure

    if isinstance(e, AuthError):
        return UserError(f"the CircleCI API refused the token: {e}")
    if isinstance(e, NotFound):
        return UserError(f"not found: {e} (check the org id and slug, and the projects)")
    if isinstance(e, TransportFailure):
        return UserError(f"cannot reach the CircleCI API: {e} (check --api-base-url and the network)")
    return click.ClickException(str(e))


# -- pipeline --------------------------------------------------------------------------------
#: The demo fetches test metadata back to the start of the "currently flaky" window (14 days
#: before the end of the last complete day: Settings' tests_lookback_days default) from a
#: clock part-way through today: one day more, so it shows every currently flaky test.
DEMO_TESTS_LOOKBACK_DAYS = Settings.model_fields["tests_lookback_days"].default + 1

#: The demo's second org: a GitHub-App org (opaque project slugs), next to the GitHub org.
DEMO_APP_ORG = "acme-labs"


@cli.command("demo")
@click.option("--seed", type=int, default=42, show_default=True, help="Simulator seed.")
@click.option("--scale", "preset", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True)
@click.option(
    "--out", "out_dir", default="data/demo", show_default=True, help="Where lake, warehouse and dashboard go."
)
@click.option("--tests-lookback-days", type=int, default=DEMO_TESTS_LOOKBACK_DAYS, show_default=True,
              help="Fetch test metadata for jobs of the last N days (default: the currently-flaky "
                   "window, Settings' tests_lookback_days, and the simulated day under way).")  # fmt: skip
def demo(seed: int, preset: str, out_dir: str, tests_lookback_days: int) -> None:
    """Run the nightly pipeline end to end on the built-in simulator.

    Starts the simulated CircleCI API (a GitHub org and a GitHub-App org) on a free loopback
    port, runs `nightly` against it with no project listed (each org's projects are
    discovered; usage export for the whole simulated history, Insights, test metadata), builds the
    warehouse and renders the dashboard, then prints a summary and where everything is.

    \b
    Example:
      circleci-analytics demo --out data/demo
    """
    import time

    from circleci_analytics.connectors.ratelimit import FAMILIES
    from circleci_analytics.simulator import OrgSpec, SimConfig, Simulator
    from circleci_analytics.simulator.server import running_server

    started = time.perf_counter()
    out = Path(out_dir)
    # Rate-limit periods divided by 360: the 10-per-hour usage export budget becomes 10 per 10 s.
    sim = Simulator(SimConfig(seed=seed, preset=preset, time_scale=360.0, export_processing_seconds=1.0, page_size=100,
                              extra_orgs=(OrgSpec(DEMO_APP_ORG),)))  # fmt: skip
    for org in sim.orgs:
        click.echo(
            f"simulated org {org.slug}: {len(sim.projects_of(org))} projects, {sim.history.days} days of history"
        )
    with running_server(sim) as url:
        # The token is passed in-process: it is excluded from the flow's serialized parameters.
        s = _settings(None, api_base_url=url, token=sim.token, lake_root=str(out / "lake"),
                      warehouse_path=str(out / "warehouse.duckdb"), dashboard_dir=str(out / "dashboard"),
                      initial_lookback_days=sim.history.days, tests_lookback_days=tests_lookback_days,
                      export_poll_seconds=1.0, rate_limits=dict.fromkeys(FAMILIES, 0), now=sim.history.now,
                      orgs=[{"id": o.id, "slug": o.slug} for o in sim.orgs])  # no projects listed: discovered  # fmt: skip
        _check_paths(s)
        from circleci_analytics.flows import nightly

        click.echo(f"simulator listening on {url}; running the nightly flow (Prefect starts a local server first) ...")
        summary = _run_flow(nightly(s, return_state=True))
    _print_summary(summary, started)
    click.echo(
        f"\nopen the dashboard: file://{Path(summary.dashboard_path).resolve()}" if summary.dashboard_path else ""
    )
    click.echo(f'query the warehouse: circleci-analytics sql --warehouse-path {out / "warehouse.duckdb"} '
               '"select * from fct_mttr_weekly limit 5"')  # fmt: skip
    _exit_for(summary)


@cli.command("run")
@_config_option
@_org_options
@setting_options(*PIPELINE)
def run(config: str | None, **flags: Any) -> None:
    """Run the nightly pipeline once against a real CircleCI org (or several).

    \b
    Example:
      export CIRCLECI_TOKEN=...        # a personal API token
      circleci-analytics run --org-id 1c3f...-uuid --org-slug gh/acme \\
          --project gh/acme/web --project circleci/AbC.../XyZ...
      circleci-analytics run --org gh/acme=1c3f...-uuid --org circleci/9d2e...=9d2e...-uuid
    """
    import time

    started = time.perf_counter()
    s = _settings(config, **flags)
    _ready_to_extract(s)
    from circleci_analytics.connectors import CircleCIError
    from circleci_analytics.flows import nightly

    try:
        summary = _run_flow(nightly(s, return_state=True))
    except CircleCIError as e:
        raise _api_error(e) from None
    _print_summary(summary, started)
    _exit_for(summary)


@cli.command("backfill")
@_config_option
@_org_options
@click.option("--start", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--end", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (YYYY-MM-DD).")
@setting_options("api_base_url", "lake_root", "warehouse_path", "dashboard_dir", "render_dashboard", "price_per_credit",
                 "rightsizing_headroom", "max_concurrency", "export_poll_seconds", "token_secret_block",
                 "warehouse_storage_version", "lease_wait_seconds")  # fmt: skip
def backfill_cmd(config: str | None, start: datetime, end: datetime, **flags: Any) -> None:
    """Backfill the usage export (365 days at most: an older start is clamped), resumably in <= 31-day
    windows, then Insights (90 days) and test metadata, for every org.

    Re-running it skips windows already landed and resumes an export job in flight
    instead of creating a new one (CircleCI allows 10 export jobs an hour). One org
    failing does not stop the others.

    \b
    Example:
      circleci-analytics backfill --org-id 1c3f...-uuid --org-slug gh/acme \\
          --start 2025-11-01 --end 2026-11-26
    """
    import time

    started = time.perf_counter()
    s = _settings(config, **flags)
    _ready_to_extract(s)
    from circleci_analytics.connectors import CircleCIError
    from circleci_analytics.flows import backfill, backfill_windows

    try:
        backfill_windows(start.date(), end.date(), s.now or datetime.now(UTC))
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        summary = _run_flow(backfill(start.date(), end.date(), s, return_state=True))
    except CircleCIError as e:
        raise _api_error(e) from None
    _print_summary(summary, started)
    _exit_for(summary)


@cli.command("serve")
@_config_option
@_org_options
@setting_options(*PIPELINE, "schedule_cron", "timezone", "prefect_dir", "prefect_port")
def serve_cmd(config: str | None, **flags: Any) -> None:
    """Run the nightly flow every night from this machine (a supervised local Prefect server).

    Starts a persistent Prefect server on loopback (its database in --prefect-dir,
    restarted if it dies) and serves the nightly deployment on the cron schedule; with
    PREFECT_API_URL set, uses that server instead. One `serve` per data folder: a second
    one refuses and names the first. For a work pool, deploy prefect.yaml instead.

    \b
    Example:
      export CIRCLECI_TOKEN=...
      circleci-analytics serve --config circleci-analytics.toml --schedule-cron "0 3 * * *"
    """
    s = _settings(config, **flags)
    _ready_to_extract(s, prefect=True)
    if config:  # the flow-run processes build their settings from the same file
        os.environ["CIRCLECI_ANALYTICS_CONFIG"] = str(Path(config).resolve())
    from circleci_analytics.serve import serve_nightly

    try:
        serve_nightly(s, echo=lambda line: click.echo(line, err=True))
    except SettingsError as e:
        raise UserError(str(e)) from None


@cli.command("build")
@_config_option
@setting_options(
    "lake_root",
    "warehouse_path",
    "price_per_credit",
    "rightsizing_headroom",
    "warehouse_storage_version",
    "lease_wait_seconds",
    "owners_file",
)
@click.option(
    "--full-refresh", is_flag=True, help="Rebuild incremental models whole (after a model definition changed)."
)
def build_cmd(config: str | None, full_refresh: bool, **flags: Any) -> None:
    """Build the DuckDB warehouse from the lake (dbt: models, data and unit tests), without extracting.

    \b
    Example:
      circleci-analytics build --lake-root data/lake --warehouse-path data/warehouse.duckdb
      circleci-analytics build --full-refresh
    """
    from circleci_analytics.teams import team_rules
    from circleci_analytics.warehouse import BuildError, Lake, build_warehouse

    s = _settings(config, **flags)
    local = "://" not in s.lake_root or s.lake_root.startswith("file://")
    if local and not Path(s.lake_root.removeprefix("file://")).expanduser().is_dir():
        # Lake() would create it, and the build would swap in an empty warehouse.
        raise UserError(
            f"lake not found: {s.lake_root} (pass --lake-root, or run `circleci-analytics demo` or `run` first)"
        )
    _check_paths(s, lake=False, dashboard=False)
    lake = Lake(s.lake_root)
    try:
        # The lake's writer lease: no run replaces a partition while the build reads it.
        with lake.lease(owner=f"build, pid {os.getpid()}", wait_seconds=s.lease_wait_seconds):
            result = build_warehouse(lake, s.warehouse_path, price_per_credit=s.price_per_credit,
                                     headroom=s.rightsizing_headroom, full_refresh=full_refresh,
                                     storage_version=s.warehouse_storage_version, teams=team_rules(s.teams))  # fmt: skip
    except BuildError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(result.summary())


@cli.command("alerts")
@_config_option
@setting_options("warehouse_path", "lake_root", "dashboard_dir", "lease_wait_seconds")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send and record nothing.")
def alerts_cmd(config: str | None, dry_run: bool, **flags: Any) -> None:
    """Evaluate the alert rules on the warehouse and send each destination what is new to it
    (the nightly does this after its build). Rules, thresholds and destinations: the [alerts]
    table of the TOML file (README, "Alerts"). Exits 1 when a delivery failed (retried next time).

    \b
    Example:
      circleci-analytics alerts --dry-run
      circleci-analytics alerts --config circleci-analytics.toml
    """
    from circleci_analytics.alerts import evaluate_and_notify
    from circleci_analytics.warehouse import Lake

    s = _settings(config, **flags)
    if not Path(s.warehouse_path).expanduser().is_file():
        raise UserError(f"warehouse not found: {s.warehouse_path} (run `circleci-analytics demo` or `build` first)")
    local = "://" not in s.lake_root or s.lake_root.startswith("file://")
    if local and not Path(s.lake_root.removeprefix("file://")).expanduser().is_dir():
        raise UserError(f"lake not found: {s.lake_root} (the alert history lives there; pass --lake-root)")
    lake = Lake(s.lake_root)
    if dry_run:
        report = evaluate_and_notify(s, s.warehouse_path, lake, dry_run=True)
    else:  # the history is written under the lake's writer lease
        with lake.lease(owner=f"alerts, pid {os.getpid()}", wait_seconds=s.lease_wait_seconds):
            report = evaluate_and_notify(s, s.warehouse_path, lake)
    for m in report.messages:
        click.echo(f"--- {'would send' if dry_run else 'sent'} to {m.destination}: {m.title}\n{m.body}\n")
    click.echo(report.markdown())
    if report.failed:
        sys.exit(EXIT_FAILURE)


@cli.command("sql")
@click.argument("query")
@_config_option
@setting_options("warehouse_path", "lake_root")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql_cmd(query: str, config: str | None, fmt: str, **flags: Any) -> None:
    """Query the warehouse, read-only, and print the result.

    Only reads run (SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, reporting
    PRAGMAs); the connection cannot write, attach, load extensions or read files other
    than the lake's.

    \b
    Example:
      circleci-analytics sql "select project_slug, sum(total_usd) from fct_credit_spend_daily group by 1"
      circleci-analytics sql --format csv "select * from fct_flaky_tests order by credits_wasted desc limit 10"
    """
    import duckdb

    from circleci_analytics.query import QueryRefused, WarehouseUnreadable, run_read_only

    s = _settings(config, **flags)
    warehouse = Path(s.warehouse_path).expanduser()
    if not warehouse.exists():
        raise UserError(f"warehouse not found: {s.warehouse_path} (run `circleci-analytics demo` or `build` first)")
    # The warehouse's lake views read Parquet under the configured lake or the `lake` folder beside it.
    lake_dirs: list[str | Path] = (
        [s.lake_root, warehouse.parent / "lake"] if "://" not in s.lake_root else [warehouse.parent / "lake"]
    )
    try:
        df = run_read_only(warehouse, query, lake_dirs)
    except (QueryRefused, WarehouseUnreadable) as e:
        raise UserError(str(e)) from None
    except duckdb.Error as e:
        raise UserError(f"query failed: {e}") from None
    if df is None:
        return
    if fmt == "csv":
        click.echo(df.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(df.write_json())
    else:
        import polars as pl

        with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=60, tbl_width_chars=200):
            click.echo(df)


@cli.command("dashboard")
@_config_option
@setting_options("warehouse_path", "dashboard_dir", aliases={"dashboard_dir": ("--out",)})
@click.option("--serve", "serve_it", is_flag=True, help="Serve it on loopback after rendering.")
@click.option("--port", type=int, default=8050, show_default=True)
def dashboard_cmd(config: str | None, serve_it: bool, port: int, **flags: Any) -> None:
    """Render the offline HTML dashboard from the marts (and optionally serve it).

    \b
    Example:
      circleci-analytics dashboard --warehouse-path data/warehouse.duckdb --dashboard-dir data/dashboard --serve
    """
    from circleci_analytics.dashboards import render_dashboard, serve_dashboard

    s = _settings(config, **flags)
    _check_paths(s, lake=False, warehouse=False)
    try:
        result = render_dashboard(s.warehouse_path, s.dashboard_dir)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    total = sum(result.page_bytes.values())
    click.echo(f"rendered {len(result.pages)} pages ({total / 1e3:,.0f} kB) in {result.render_seconds:.2f} s: "
               f"file://{result.index.resolve()}")  # fmt: skip
    for name, err in result.query_errors.items():
        click.echo(f"  warning: query {name}: {err}", err=True)
    if serve_it:
        serve_dashboard(
            s.dashboard_dir, port=port, on_ready=lambda url: click.echo(f"serving on {url} (Ctrl-C to stop)")
        )


@cli.command("mcp")
@_config_option
@click.option("--warehouse", "--warehouse-path", "warehouse_path", default=None, help="DuckDB warehouse file.")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio (an MCP client starts this command) or streamable HTTP on 127.0.0.1.")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="HTTP port (default 8766), loopback only.")
def mcp_cmd(config, warehouse_path, transport, port) -> None:
    """Serve the warehouse to AI agents over MCP: read-only tools (credits, forecast, flaky
    tests, MTTR, right-sizing, marts, bounded SQL), the file re-opened for every call.

    \b
    Example:
      circleci-analytics mcp --warehouse data/demo/warehouse.duckdb          # stdio
      circleci-analytics mcp --transport http --port 8766   # http://127.0.0.1:8766/mcp
    """
    from circleci_analytics.agent import DEFAULT_PORT, lake_dirs_for, serve
    from circleci_analytics.query import WarehouseUnreadable, open_read_only

    s = _settings(config, warehouse_path=warehouse_path)
    try:
        open_read_only(s.warehouse_path).close()
    except WarehouseUnreadable as e:
        raise UserError(f"{e} (run `circleci-analytics demo` or `build` first)") from None
    port = port or DEFAULT_PORT
    where = f"http://127.0.0.1:{port}/mcp" if transport == "http" else "stdio"
    click.echo(f"circleci-analytics MCP server (read-only) on {where}: {s.warehouse_path}", err=True)
    serve(s.warehouse_path, transport=transport, port=port, lake_dirs=lake_dirs_for(s.warehouse_path, s.lake_root))


def main() -> None:
    _State.debug = False
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SettingsError as e:  # raised below the CLI (e.g. by a flow) for a fixable configuration
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except LeaseError as e:  # another run holds the lake (or took it over from this one)
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last resort: one line, the traceback only with --debug
        if _State.debug:
            traceback.print_exc()
        else:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            click.echo(f"Error: unexpected {type(e).__name__}: {first} (run with --debug for the traceback)", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
