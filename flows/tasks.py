"""The Prefect tasks both flows use (`nightly` and `backfill`), and what they share around them:
the token, the retry rule, building and rendering.

Retries: the client retries transient errors (429, 5xx, transport) itself, so the API tasks
have no Prefect retries on top (a deterministic error - 400, 404, auth, validation - would
fail again, and a transient one already had its retries). Only the usage export, whose job
resumes from durable state and whose polling outlives short outages, is retried by Prefect,
and only for a transient error (`retry_if_transient`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency

from circleci_analytics.connectors import (
    CircleCIClient,
    CircleCIError,
    Extract,
    NotFound,
    discover_projects,
    is_transient,
)
from circleci_analytics.connectors.projects import DISCOVERY_LOOKBACK
from circleci_analytics.connectors.tests_metadata import DEFAULT_REPROBE_AFTER, JobRef, JobTestsResult
from circleci_analytics.connectors.usage_export import UsageExportResult
from circleci_analytics.flows import steps
from circleci_analytics.flows.publishing import publish_outputs
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.summary import RunSummary, warehouse_highlights
from circleci_analytics.settings import Org, Settings, SettingsError
from circleci_analytics.teams import team_rules
from circleci_analytics.warehouse import BuildResult, Lake, build_warehouse
from circleci_analytics.warehouse.state import Documents

__all__ = ["INSIGHTS_CONCURRENCY_LIMIT", "MissingToken", "OrgRun", "build_and_render", "describe", "job_tests_task",
           "land_task", "land_usage_task", "org_projects", "org_state", "project_streams_task", "resolve_projects_task",
           "resolve_token", "retry_if_transient", "usage_export_task"]  # fmt: skip


class MissingToken(SettingsError):
    pass


async def resolve_token(settings: Settings) -> str:
    """The API token: the one the settings hold (from $CIRCLECI_TOKEN where they were built, or
    passed in-process, never serialized), else the Prefect Secret block they name."""
    if settings.token is not None:
        return settings.token.get_secret_value()
    if settings.token_secret_block:
        from prefect.blocks.system import Secret

        secret: Secret[Any] = await Secret.aload(settings.token_secret_block)
        return secret.get()
    raise MissingToken(
        "no CircleCI token: set CIRCLECI_TOKEN to a personal API token "
        "(https://app.circleci.com/settings/user/tokens) or name a Prefect Secret block in token_secret_block"
    )


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only a transient error, never a 4xx or validation error."""
    return is_transient(state.data)


# -- tasks (arguments are live objects, so no input caching) ----------------------------------
@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def resolve_projects_task(
    client: CircleCIClient, org: Org, now: datetime
) -> tuple[Extract, list[str], list[str]]:
    """Resolve the org's listed projects, or discover them (`connectors.projects.discover_projects`).
    Returns the projects, the slugs that do not exist, and what discovery's cross-check found."""
    if org.projects:
        return (*await steps.resolve_projects(client, list(org.projects)), [])
    found = await discover_projects(client, org.slug, now)
    logger = get_run_logger()
    logger.info("org %s: %d projects discovered from %d page(s) of pipelines%s", org.slug, len(found.slugs),
                found.pages, " (page bound reached)" if found.truncated else "")  # fmt: skip
    if found.insights_names is None:
        logger.warning("org %s: Insights' org summary could not be read; discovery not cross-checked", org.slug)
    if not found.slugs:
        raise NotFound(404, f"no project of org {org.slug!r} has a pipeline in the last "
                       f"{DISCOVERY_LOOKBACK.days} days", "GET", "/pipeline",
                       hint="list the org's projects in its [[orgs]] table")  # fmt: skip
    projects, unknown = await steps.resolve_projects(client, found.slugs)
    table = projects.table
    names = {str(slug): name for slug, name in zip(table.column("project_slug").to_pylist(),
                                                   table.column("project_name").to_pylist(), strict=True)}  # fmt: skip
    notes = found.mismatches(names)
    for note in notes:
        logger.warning("org %s: project discovery: %s", org.slug, note)
    return projects, unknown, [f"{org.slug}: {n}" for n in notes]


async def org_projects(client: CircleCIClient, org: Org, settings: Settings, summary: RunSummary) -> Extract:
    """The org's projects (listed or discovered), noted in the summary."""
    projects, unknown, notes = await resolve_projects_task(client, org, steps.clock(settings))
    summary.unknown_projects += unknown
    summary.discovery_mismatches += notes
    summary.projects_per_org[org.slug] = projects.num_rows
    return projects


@task(retries=2, retry_delay_seconds=30, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE,
      tags=["circleci-usage-export"])  # fmt: skip
async def usage_export_task(client: CircleCIClient, settings: Settings, org: Org, store: Documents,
                            start: datetime, end: datetime, workdir: str,
                            sleep: Callable[[float], Awaitable[None]] | None = None) -> UsageExportResult:  # fmt: skip
    """Create or resume, poll, download and merge the usage export (resumable); `sleep`: the
    pause between polls (a backfill shows it)."""
    return await steps.export_usage_window(client, settings, org, store, start, end, Path(workdir),
                                           **({"sleep": sleep} if sleep else {}))  # fmt: skip


@task(cache_policy=NO_CACHE)
def land_task(lake: Lake, extracts: list[Extract]) -> dict[str, int]:
    """Land extracts in the lake (idempotent)."""
    return steps.land_extracts(lake, extracts)


@task(cache_policy=NO_CACHE)
def land_usage_task(lake: Lake, result: UsageExportResult) -> dict[str, int]:
    """Land a merged usage export, replacing its window."""
    return steps.land_usage(lake, result)


@task(cache_policy=NO_CACHE)
def build_task(lake: Lake, settings: Settings) -> BuildResult:
    """Build the DuckDB warehouse and run the data tests (atomic swap)."""
    return build_warehouse(lake, settings.warehouse_path, price_per_credit=settings.price_per_credit,
                           headroom=settings.rightsizing_headroom, storage_version=settings.warehouse_storage_version,
                           fail_on_test_error=False, teams=team_rules(settings.teams))  # fmt: skip


@task(cache_policy=NO_CACHE)
def render_task(settings: Settings) -> str:
    """Render the offline dashboard from the marts."""
    from circleci_analytics.dashboards import render_dashboard

    return str(render_dashboard(settings.warehouse_path, settings.dashboard_dir).index)


def build_and_render(lake: Lake, settings: Settings, summary: RunSummary, window_start: datetime | None) -> None:
    """Build the warehouse (and the dashboard, if the settings say so), noting it in the summary."""
    with summary.timed("build"):
        result = build_task(lake, settings)
    summary.models_built = len(result.models)
    summary.data_tests = len(result.tests)
    summary.data_tests_failed = [t.name for t in result.failed_tests]
    summary.highlights = warehouse_highlights(str(result.db_path), window_start.date() if window_start else None)
    if settings.render_dashboard:
        with summary.timed("dashboard"):
            summary.dashboard_path = render_task(settings)
    publish_outputs(settings, summary)


# -- the stages of one org's run (nightly and backfill) ---------------------------------------
#: Prefect global concurrency limit (optional) on projects extracted at once.
INSIGHTS_CONCURRENCY_LIMIT = "circleci-insights"


# -- tasks (arguments are live objects, so no input caching) ----------------------------------
@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def project_streams_task(client: CircleCIClient, slug: str, state: PipelineState, settings: Settings,
                               limited: bool = False, history_from: datetime | None = None) -> steps.ProjectStreams:  # fmt: skip
    """Every catalogued stream of one project that is due.

    Projects run concurrently; `prefect gcl create circleci-insights --limit N` caps how many
    run at once across every worker (without that limit, only the client's own bounds apply).
    """
    if not limited:
        return await steps.extract_project_streams(client, slug, state, settings, history_from)
    async with concurrency(INSIGHTS_CONCURRENCY_LIMIT, occupy=1):
        return await steps.extract_project_streams(client, slug, state, settings, history_from)


async def _concurrency_limit_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as prefect_client:
        try:
            await prefect_client.read_global_concurrency_limit_by_name(name)
            return True
        except ObjectNotFound:
            return False


@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def job_tests_task(client: CircleCIClient, refs: list[JobRef], state: PipelineState,
                         settings: Settings) -> JobTestsResult:  # fmt: skip
    """Test metadata of the jobs whose tests have not landed."""
    return await steps.fetch_job_tests(client, refs, state, settings)


def org_state(store: Documents, org: Org, settings: Settings) -> tuple[PipelineState, datetime]:
    """The org's pipeline state, pruned to what this run can use, and the start of the tests
    look-back (test metadata is fetched for the jobs started since)."""
    state = PipelineState.load(store, org.id)
    now = steps.clock(settings)
    since = now - timedelta(days=settings.tests_lookback_days)
    state.prune(tests_since=since, names_since=now - DEFAULT_REPROBE_AFTER,
                watermarks_since=now - steps.INSIGHTS_RETENTION)  # fmt: skip
    return state, since


@dataclass
class OrgRun:
    """The stages of one org's run; each lands its data, then saves the watermarks it advanced.
    `history_from` (a backfill): incremental streams are read from it, whatever their watermarks."""

    org: Org
    settings: Settings
    client: CircleCIClient
    lake: Lake
    store: Documents
    state: PipelineState
    summary: RunSummary
    logger: Any
    history_from: datetime | None = None

    async def streams(self, slugs: list[str]) -> None:
        """Every project's catalogued streams; the watermarks of the projects that landed."""
        self.logger.info("org %s: %d projects", self.org.slug, len(slugs))
        limited = await _concurrency_limit_exists(INSIGHTS_CONCURRENCY_LIMIT)
        with self.summary.timed("insights"):
            results = await asyncio.gather(
                *(
                    project_streams_task(self.client, s, self.state, self.settings, limited, self.history_from)
                    for s in slugs
                ),
                return_exceptions=True,
            )
        extracts: list[Extract] = []
        landed = []
        for slug, res in zip(slugs, results, strict=True):
            if isinstance(res, BaseException):
                self.summary.failed_projects[slug] = describe(res)
                self.logger.warning("project %s failed: %s", slug, describe(res))
            else:
                extracts += res.extracts
                landed.append(res.watermarks)
        with self.summary.timed("land"):
            self.summary.add_rows(await asyncio.to_thread(land_task, self.lake, extracts))
        for marks in landed:
            self.state.watermarks.update(marks)
        self.state.save(self.store)

    async def usage(self, start: datetime, end: datetime, workdir: str) -> None:
        """The usage export of [start, end]; the usage watermark once it landed."""
        try:
            with self.summary.timed("usage_export"):
                usage = await usage_export_task(self.client, self.settings, self.org, self.store, start, end, workdir)
        except CircleCIError as e:
            return self._failed(f"usage export of {self.org.slug} {start:%Y-%m-%d}..{end:%Y-%m-%d}", e)
        self.summary.usage_windows += [f"{w.start:%Y-%m-%d}..{w.end:%Y-%m-%d}" for w in usage.windows]
        self.summary.quarantined_rows += usage.quarantined_rows
        self.summary.unknown_columns = sorted(set(self.summary.unknown_columns) | set(usage.unknown_columns))
        with self.summary.timed("land"):
            self.summary.add_rows(await asyncio.to_thread(land_usage_task, self.lake, usage))
        self.state.usage_exported_until = end
        self.state.save(self.store)

    async def job_tests(self, projects: Extract, since: datetime) -> None:
        """Tests of every job since `since` the lake holds without them, whichever run exported
        it; the jobs of projects that failed this run wait for the next."""
        refs, left_out = await asyncio.to_thread(steps.unprobed_job_refs, self.lake, self.org.id, projects, since,
                                                 self.state)  # fmt: skip
        failed = self.summary.failed_projects
        deferred = sum(r.project_slug in failed for r in refs)
        refs = [r for r in refs if r.project_slug not in failed]
        with self.summary.timed("job_tests"):
            tests = await job_tests_task(self.client, refs, self.state, self.settings)
        with self.summary.timed("land"):
            self.summary.add_rows(await asyncio.to_thread(land_task, self.lake, [tests.extract]))
        self.summary.add_probes(tests, left_out=left_out, deferred=deferred)
        steps.remember_probes(self.state, refs, tests)
        self.state.save(self.store)

    def _failed(self, what: str, error: CircleCIError) -> None:
        self.summary.failed_org_calls[what] = describe(error)
        self.logger.warning("%s failed: %s", what, describe(error))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@task(cache_policy=NO_CACHE)
def alerts_task(settings: Settings, lake: Lake, summary: RunSummary, error: BaseException | None = None) -> Any:
    """Evaluate the alert rules on the new marts (only the run's, with the `error` that stopped
    it); send each new incident once (`alerts`). Their own error is reported, not raised."""
    from prefect.runtime import flow_run

    from circleci_analytics.alerts import AlertReport, evaluate_and_notify

    try:
        return evaluate_and_notify(settings, settings.warehouse_path, lake, summary, run_id=flow_run.id, error=error)
    except Exception as e:
        get_run_logger().error("alerts failed: %s", describe(e))
        return AlertReport(notes=[f"alerts failed: {describe(e)} (the next run evaluates them again)"])
