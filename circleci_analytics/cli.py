"""The `circleci-analytics` command line: parses arguments, calls library code, maps errors
to messages and exit codes (0 ok, 1 pipeline failure, 2 user error)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

# Prefect's ephemeral server: first start on a fresh PREFECT_HOME is slow, and there is no
# internet for telemetry. Set before anything imports prefect.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

__all__ = ["main", "cli"]


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
def cli() -> None:
    """CircleCI analytics: credits, flaky tests and MTTR from the CircleCI API into
    Parquet, DuckDB and a dashboard.

    \b
    Example:
      circleci-analytics demo            # whole pipeline on the built-in simulator
    """


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



# -- pipeline --------------------------------------------------------------------------------
class UserError(click.ClickException):
    """A problem the user can fix (exit code 2)."""

    exit_code = EXIT_USAGE


def _settings(config: str | None, **overrides):
    from circleci_analytics.settings import load_settings
    from pydantic import ValidationError

    try:
        return load_settings(config, **overrides)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except ValidationError as e:
        raise UserError(f"invalid configuration: {e}") from None


def _config_option(f):
    return click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                        help="TOML settings file (default: ./circleci-analytics.toml if present).")(f)  # fmt: skip


def _output_options(f):
    f = click.option("--lake", "lake_root", default=None, help="Lake root: a folder or s3://bucket/prefix.")(f)
    f = click.option("--warehouse", "warehouse_path", default=None, help="DuckDB warehouse file.")(f)
    f = click.option("--dashboard-dir", default=None, help="Where the dashboard HTML goes.")(f)
    return f


def _print_summary(summary, started: float) -> None:
    import time

    click.echo(summary.markdown())
    click.echo(f"\nfinished in {time.perf_counter() - started:,.1f} s")


def _exit_for(summary) -> None:
    if summary.status == "failed":
        sys.exit(EXIT_FAILURE)
    if summary.status == "partial":
        click.echo("partial success: some projects were not updated (see above)", err=True)
        sys.exit(EXIT_FAILURE)


def _run_flow(coro):
    import asyncio

    state = asyncio.run(coro)
    result = state.result(raise_on_failure=False) if hasattr(state, "result") else state
    if isinstance(result, BaseException):
        raise result
    return result


def _org_targets(settings):
    from circleci_analytics.flows import OrgTarget

    if not settings.org_id or not settings.org_slug:
        raise UserError(
            "set the organisation: --org-id (UUID, Organization Settings > Overview) and --org-slug "
            "(e.g. gh/acme), or CIRCLECI_ANALYTICS_ORG_ID / CIRCLECI_ANALYTICS_ORG_SLUG, or the TOML file"
        )
    return [OrgTarget(id=settings.org_id, slug=settings.org_slug, projects=list(settings.projects))]


def _require_token(settings) -> None:
    from circleci_analytics.connectors import InvalidToken, normalize_token

    if settings.token is None:
        raise UserError(
            "no CircleCI token: export CIRCLECI_TOKEN=<personal API token> "
            "(create one at https://app.circleci.com/settings/user/tokens)"
        )
    try:
        os.environ["CIRCLECI_TOKEN"] = normalize_token(settings.token.get_secret_value())
    except InvalidToken as e:
        raise UserError(str(e)) from None


def _api_error(e: Exception) -> click.ClickException:
    from circleci_analytics.connectors import AuthError, NotFound, TransportFailure

    if isinstance(e, AuthError):
        return UserError(f"the CircleCI API refused the token: {e}")
    if isinstance(e, NotFound):
        return UserError(f"not found: {e} (check --org-id, --org-slug and --project)")
    if isinstance(e, TransportFailure):
        return UserError(f"cannot reach the CircleCI API: {e} (check --api-url and the network)")
    return click.ClickException(str(e))


@cli.command("demo")
@click.option("--seed", type=int, default=42, show_default=True, help="Simulator seed.")
@click.option("--scale", "preset", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True)
@click.option("--out", "out_dir", default="data/demo", show_default=True, help="Where lake, warehouse and dashboard go.")
@click.option("--tests-lookback-days", type=int, default=7, show_default=True,
              help="Fetch test metadata for jobs of the last N days.")  # fmt: skip
def demo(seed: int, preset: str, out_dir: str, tests_lookback_days: int) -> None:
    """Run the nightly pipeline end to end on the built-in simulator.

    Starts the simulated CircleCI API on a free loopback port, runs `nightly` against it
    (usage export for the whole simulated history, Insights, test metadata), builds the
    warehouse and renders the dashboard, then prints a summary and where everything is.

    \b
    Example:
      circleci-analytics demo --out data/demo
    """
    import time

    from circleci_analytics.flows import OrgTarget, nightly
    from circleci_analytics.simulator import SimConfig, Simulator
    from circleci_analytics.simulator.server import running_server

    started = time.perf_counter()
    out = Path(out_dir)
    # Rate-limit periods divided by 360: the 10-per-hour usage export budget becomes 10 per 10 s.
    sim = Simulator(SimConfig(seed=seed, preset=preset, time_scale=360.0, export_processing_seconds=1.0, page_size=100))
    os.environ["CIRCLECI_TOKEN"] = sim.token
    click.echo(f"simulated org {sim.org.slug}: {len(sim.projects)} projects, {sim.history.days} days of history")
    with running_server(sim) as url:
        click.echo(f"simulator listening on {url}; running the nightly flow (Prefect starts a local server first) ...")
        summary = _run_flow(nightly(
            orgs=[OrgTarget(id=sim.org.id, slug=sim.org.slug, projects=[p.slug for p in sim.projects])],
            api_base_url=url, lake_root=str(out / "lake"), warehouse_path=str(out / "warehouse.duckdb"),
            dashboard_dir=str(out / "dashboard"), initial_lookback_days=sim.history.days,
            tests_lookback_days=tests_lookback_days, export_poll_seconds=1.0,
            rate_limits={"core": None, "insights": None, "tests": None, "usage_export": None},
            now=sim.history.now, return_state=True,
        ))  # fmt: skip
    _print_summary(summary, started)
    click.echo(f"\nopen the dashboard: file://{Path(summary.dashboard_path).resolve()}" if summary.dashboard_path else "")
    click.echo(f'query the warehouse: circleci-analytics sql --warehouse {out / "warehouse.duckdb"} '
               '"select * from fct_mttr_weekly limit 5"')  # fmt: skip
    _exit_for(summary)


@cli.command("run")
@_config_option
@click.option("--org-id", default=None, help="Organization id (UUID).")
@click.option("--org-slug", default=None, help="Org slug, e.g. gh/acme.")
@click.option("--project", "projects", multiple=True, help="Project slug (repeatable); default: discover.")
@click.option("--api-url", "api_base_url", default=None, help="API base URL (default https://circleci.com/api/v2).")
@_output_options
@click.option("--lookback-days", "initial_lookback_days", type=int, default=None,
              help="First run only: days of history to pull (default 30; later runs are incremental).")  # fmt: skip
@click.option("--price-per-credit", type=float, default=None, help="USD per credit (default 0.0006).")
def run(config, org_id, org_slug, projects, api_base_url, lake_root, warehouse_path, dashboard_dir,
        initial_lookback_days, price_per_credit) -> None:  # fmt: skip
    """Run the nightly pipeline once against a real CircleCI org.

    \b
    Example:
      export CIRCLECI_TOKEN=...        # a personal API token
      circleci-analytics run --org-id 1c3f...-uuid --org-slug gh/acme \\
          --project gh/acme/web --project circleci/AbC.../XyZ...
    """
    import time

    from circleci_analytics.connectors import CircleCIError
    from circleci_analytics.flows import nightly

    started = time.perf_counter()
    s = _settings(config, org_id=org_id, org_slug=org_slug, projects=list(projects) or None, api_base_url=api_base_url,
                  lake_root=lake_root, warehouse_path=warehouse_path, dashboard_dir=dashboard_dir,
                  price_per_credit=price_per_credit, initial_lookback_days=initial_lookback_days)  # fmt: skip
    _require_token(s)
    orgs = _org_targets(s)
    try:
        summary = _run_flow(nightly(
            orgs=orgs, api_base_url=s.api_base_url, lake_root=s.lake_root, warehouse_path=s.warehouse_path,
            dashboard_dir=s.dashboard_dir, price_per_credit=s.price_per_credit,
            rightsizing_headroom=s.rightsizing_headroom, overlap_days=s.overlap_days,
            initial_lookback_days=s.initial_lookback_days, tests_lookback_days=s.tests_lookback_days,
            max_concurrency=s.max_concurrency, export_poll_seconds=s.export_poll_seconds,
            job_include=s.job_include, job_exclude=s.job_exclude, return_state=True,
        ))  # fmt: skip
    except CircleCIError as e:
        raise _api_error(e) from None
    _print_summary(summary, started)
    _exit_for(summary)


@cli.command("backfill")
@_config_option
@click.option("--org-id", default=None, help="Organization id (UUID).")
@click.option("--org-slug", default=None, help="Org slug, e.g. gh/acme.")
@click.option("--project", "projects", multiple=True, help="Project slug (repeatable).")
@click.option("--start", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--end", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (YYYY-MM-DD).")
@click.option("--api-url", "api_base_url", default=None)
@_output_options
def backfill_cmd(config, org_id, org_slug, projects, start, end, api_base_url, lake_root, warehouse_path,
                 dashboard_dir) -> None:  # fmt: skip
    """Backfill up to 13 months of usage export, resumably (<= 31-day windows).

    Re-running it skips windows already landed and resumes an export job in flight
    instead of creating a new one (CircleCI allows 10 export jobs an hour).

    \b
    Example:
      circleci-analytics backfill --org-id 1c3f...-uuid --org-slug gh/acme \\
          --start 2025-11-01 --end 2026-11-26
    """
    import time

    from circleci_analytics.connectors import CircleCIError
    from circleci_analytics.flows import backfill

    started = time.perf_counter()
    s = _settings(config, org_id=org_id, org_slug=org_slug, projects=list(projects) or None, api_base_url=api_base_url,
                  lake_root=lake_root, warehouse_path=warehouse_path, dashboard_dir=dashboard_dir)  # fmt: skip
    _require_token(s)
    org = _org_targets(s)[0]
    try:
        summary = _run_flow(backfill(
            org=org, start=start.date(), end=end.date(), api_base_url=s.api_base_url, lake_root=s.lake_root,
            warehouse_path=s.warehouse_path, dashboard_dir=s.dashboard_dir, price_per_credit=s.price_per_credit,
            rightsizing_headroom=s.rightsizing_headroom, export_poll_seconds=s.export_poll_seconds, return_state=True,
        ))  # fmt: skip
    except (CircleCIError, ValueError) as e:
        raise _api_error(e) if isinstance(e, CircleCIError) else UserError(str(e)) from None
    _print_summary(summary, started)
    _exit_for(summary)


@cli.command("serve")
@_config_option
@click.option("--cron", default=None, help="Cron schedule (default '0 3 * * *', UTC).")
def serve_cmd(config, cron) -> None:
    """Serve the nightly flow on a cron schedule from this machine (flow.serve).

    For a Prefect server or Cloud work pool, deploy with `prefect deploy` (prefect.yaml).

    \b
    Example:
      export CIRCLECI_TOKEN=...
      circleci-analytics serve --config circleci-analytics.toml --cron "0 3 * * *"
    """
    from circleci_analytics.flows import nightly

    s = _settings(config, schedule_cron=cron)
    _require_token(s)
    orgs = _org_targets(s)
    from prefect.schedules import Cron

    nightly.serve(
        name="circleci-nightly", schedule=Cron(s.schedule_cron, timezone=s.timezone),
        parameters={"orgs": [o.model_dump() for o in orgs], "api_base_url": s.api_base_url, "lake_root": s.lake_root,
                    "warehouse_path": s.warehouse_path, "dashboard_dir": s.dashboard_dir,
                    "price_per_credit": s.price_per_credit, "rightsizing_headroom": s.rightsizing_headroom,
                    "overlap_days": s.overlap_days, "tests_lookback_days": s.tests_lookback_days,
                    "max_concurrency": s.max_concurrency, "export_poll_seconds": s.export_poll_seconds,
                    "job_include": s.job_include, "job_exclude": s.job_exclude,
                    "initial_lookback_days": s.initial_lookback_days},
    )  # fmt: skip


@cli.command("build")
@_config_option
@_output_options
@click.option("--price-per-credit", type=float, default=None, help="USD per credit (default 0.0006).")
def build_cmd(config, lake_root, warehouse_path, dashboard_dir, price_per_credit) -> None:
    """Build the DuckDB warehouse from the lake (models + data tests), without extracting.

    \b
    Example:
      circleci-analytics build --lake data/lake --warehouse data/warehouse.duckdb
    """
    from circleci_analytics.warehouse import BuildError, build_warehouse

    s = _settings(config, lake_root=lake_root, warehouse_path=warehouse_path, price_per_credit=price_per_credit)
    local = "://" not in s.lake_root or s.lake_root.startswith("file://")
    if local and not Path(s.lake_root.removeprefix("file://")).expanduser().is_dir():
        # Lake() would create it, and the build would swap in an empty warehouse.
        raise UserError(f"lake not found: {s.lake_root} (pass --lake, or run `circleci-analytics demo` or `run` first)")
    try:
        result = build_warehouse(s.lake_root, s.warehouse_path, price_per_credit=s.price_per_credit,
                                 headroom=s.rightsizing_headroom)  # fmt: skip
    except BuildError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(result.summary())


@cli.command("sql")
@click.argument("query")
@_config_option
@click.option("--warehouse", "warehouse_path", default=None, help="DuckDB warehouse file.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql_cmd(query, config, warehouse_path, fmt) -> None:
    """Query the warehouse (read-only) and print the result.

    \b
    Example:
      circleci-analytics sql "select project_slug, sum(total_usd) from fct_credit_spend_daily group by 1"
      circleci-analytics sql --format csv "select * from fct_flaky_tests order by credits_wasted desc limit 10"
    """
    import duckdb

    s = _settings(config, warehouse_path=warehouse_path)
    if not Path(s.warehouse_path).exists():
        raise UserError(f"warehouse not found: {s.warehouse_path} (run `circleci-analytics demo` or `build` first)")
    con = duckdb.connect(s.warehouse_path, read_only=True)
    try:
        rel = con.sql(query)
        if rel is None:
            return
        df = rel.pl()
    except duckdb.Error as e:
        raise UserError(f"query failed: {e}") from None
    finally:
        con.close()
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
@click.option("--warehouse", "warehouse_path", default=None, help="DuckDB warehouse file.")
@click.option("--out", "dashboard_dir", default=None, help="Output folder.")
@click.option("--serve", "serve_it", is_flag=True, help="Serve it on loopback after rendering.")
@click.option("--port", type=int, default=8050, show_default=True)
def dashboard_cmd(config, warehouse_path, dashboard_dir, serve_it, port) -> None:
    """Render the offline HTML dashboard from the marts (and optionally serve it).

    \b
    Example:
      circleci-analytics dashboard --warehouse data/warehouse.duckdb --out data/dashboard --serve
    """
    from circleci_analytics.dashboards import render_dashboard, serve_dashboard

    s = _settings(config, warehouse_path=warehouse_path, dashboard_dir=dashboard_dir)
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
        serve_dashboard(s.dashboard_dir, port=port, on_ready=lambda url: click.echo(f"serving on {url} (Ctrl-C to stop)"))


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
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
