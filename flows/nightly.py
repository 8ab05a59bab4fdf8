"""The nightly flow: projects -> Insights -> usage export -> job tests -> land -> build ->
dashboard -> one markdown artifact.

One project failing does not lose the others, and nothing a run fails to fetch is lost:
cursors advance per project and only once the data landed, and test metadata is probed for
every recent job the lake holds without it, so the next run fetches what this one missed.
Anything missed is counted in the summary and the run ends *Partially Completed*.

Retries: the client retries transient errors (429, 5xx, transport) itself, so the API tasks
have no Prefect retries on top (a deterministic error - 400, 404, auth, validation - would
fail again, and a transient one already had its retries). Only the usage export, whose job
resumes from durable state and whose polling outlives short outages, is retried by Prefect,
and only for a transient error (`retry_if_transient`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency
from prefect.states import Completed, Failed

from circleci_analytics.connectors import CircleCIClient, CircleCIError, Extract
from circleci_analytics.connectors.errors import is_transient
from circleci_analytics.connectors.tests_metadata import DEFAULT_REPROBE_AFTER
from circleci_analytics.settings import Org as OrgTarget
from circleci_analytics.settings import Settings, SettingsError, check_paths
from circleci_analytics.teams import team_rules
from circleci_analytics.warehouse import BuildResult, Lake, build_warehouse

from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.state import LakeStateStore, PipelineState
from circleci_analytics.flows.summary import RunSummary, warehouse_highlights

__all__ = ["OrgTarget", "nightly", "pipeline_config", "resolve_token", "retry_if_transient", "run_org", "build_and_render"]

#: Prefect global concurrency limit (optional) on projects extracted at once.
INSIGHTS_CONCURRENCY_LIMIT = "circleci-insights"


class MissingToken(SettingsError):
    pass


def resolve_token(settings: Settings) -> str:
    """The API token: the one the settings hold (from $CIRCLECI_TOKEN where they were built, or
    passed in-process, never serialized), else the Prefect Secret block they name."""
    if settings.token is not None:
        return settings.token.get_secret_value()
    if settings.token_secret_block:
        from prefect.blocks.system import Secret

        return Secret.load(settings.token_secret_block).get()
    raise MissingToken(
        "no CircleCI token: set CIRCLECI_TOKEN to a personal API token "
        "(https://app.circleci.com/settings/user/tokens) or name a Prefect Secret block in token_secret_block"
    )


def pipeline_config(settings: Settings, org: OrgTarget) -> steps.PipelineConfig:
    """The internal per-org config, built here and nowhere else (the settings it shares by name)."""
    shared = {f.name for f in fields(steps.PipelineConfig)} & set(Settings.model_fields)
    return steps.PipelineConfig(org_id=org.id, org_slug=org.slug, projects=list(org.projects),
                                **{name: getattr(settings, name) for name in shared})  # fmt: skip


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only a transient error, never a 4xx or validation error."""
    return is_transient(state.data)


# -- tasks (arguments are live objects, so no input caching) ----------------------------------
@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def resolve_projects_task(client: CircleCIClient, org: OrgTarget) -> tuple[Extract, list[str]]:
    """Resolve (or discover) the org's projects."""
    slugs = org.projects or await steps.discover_project_slugs(client, org.slug)
    return await steps.resolve_projects(client, slugs)


@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def project_insights_task(client: CircleCIClient, slug: str, state: PipelineState,
                                cfg: steps.PipelineConfig, limited: bool = False) -> steps.ProjectInsights:  # fmt: skip
    """Every Insights stream of one project.

    Projects run concurrently; `prefect gcl create circleci-insights --limit N` caps how many
    run at once across every worker (without that limit, only the client's own bounds apply).
    """
    if not limited:
        return await steps.extract_project_insights(client, slug, state, cfg)
    async with concurrency(INSIGHTS_CONCURRENCY_LIMIT, occupy=1):
        return await steps.extract_project_insights(client, slug, state, cfg)


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
async def org_insights_task(client: CircleCIClient, org_slug: str) -> list[Extract]:
    """Org-level Insights summaries."""
    return await steps.extract_org_insights(client, org_slug)


@task(retries=2, retry_delay_seconds=30, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE,
      tags=["circleci-usage-export"])  # fmt: skip
async def usage_export_task(client: CircleCIClient, cfg: steps.PipelineConfig, store: LakeStateStore,
                            start: datetime, end: datetime, workdir: str):  # fmt: skip
    """Create or resume, poll, download and merge the usage export (resumable)."""
    return await steps.export_usage_window(client, cfg, store, start, end, Path(workdir))


@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def job_tests_task(client: CircleCIClient, refs: list, state: PipelineState, cfg: steps.PipelineConfig):
    """Test metadata of the jobs whose tests have not landed."""
    return await steps.fetch_job_tests(client, refs, state, cfg)


@task(cache_policy=NO_CACHE)
def land_task(lake: Lake, extracts: list[Extract]) -> dict[str, int]:
    """Land extracts in the lake (idempotent)."""
    return steps.land_extracts(lake, extracts)


@task(cache_policy=NO_CACHE)
def land_usage_task(lake: Lake, result: Any) -> dict[str, int]:
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


# -- orchestration ----------------------------------------------------------------------------
async def run_org(org: OrgTarget, org_cfg: steps.PipelineConfig, token: str, lake: Lake, summary: RunSummary,
                  *, usage_start: datetime | None = None) -> None:  # fmt: skip
    """Extract and land one org. Each cursor is saved once its data has landed: a project
    that failed keeps its watermarks, the others advance; a failed org-level call is
    reported and the rest goes on."""
    store = LakeStateStore(lake)
    state = PipelineState.load(store, org.id)
    now = org_cfg.clock()
    since = now - timedelta(days=org_cfg.tests_lookback_days)  # test metadata for the jobs started since
    state.prune(tests_since=since, names_since=now - DEFAULT_REPROBE_AFTER,
                watermarks_since=now - steps.INSIGHTS_RETENTION)  # fmt: skip
    start, end = steps.usage_window(state, org_cfg, usage_start)
    steps.record_history_start(state, start)
    scratch = steps.scratch_dir(org_cfg)
    try:
        async with steps.make_client(org_cfg, token) as client:
            run = _OrgRun(org, org_cfg, client, lake, store, state, summary, get_run_logger())
            try:
                with summary.timed("projects"):
                    projects, unknown = await resolve_projects_task(client, org)
                summary.unknown_projects += unknown
                summary.add_rows(await asyncio.to_thread(land_task, lake, [projects]))
                await run.insights(projects.table.column("project_slug").to_pylist())
                await run.usage(start, end, org_cfg.workdir or scratch.name)
                await run.job_tests(projects, since)
            finally:
                summary.add_calls(client.stats)
    finally:
        if scratch is not None:
            scratch.cleanup()


@dataclass
class _OrgRun:
    """The stages of one org's run; each lands its data, then saves the cursors it advanced."""

    org: OrgTarget
    cfg: steps.PipelineConfig
    client: CircleCIClient
    lake: Lake
    store: LakeStateStore
    state: PipelineState
    summary: RunSummary
    logger: Any

    async def insights(self, slugs: list[str]) -> None:
        """Every project's Insights and the org summaries; watermarks of the projects that landed."""
        self.logger.info("org %s: %d projects", self.org.slug, len(slugs))
        limited = await _concurrency_limit_exists(INSIGHTS_CONCURRENCY_LIMIT)
        with self.summary.timed("insights"):
            results = await asyncio.gather(
                *(project_insights_task(self.client, s, self.state, self.cfg, limited) for s in slugs),
                return_exceptions=True,
            )
        extracts: list[Extract] = []
        watermarks = {}
        for slug, res in zip(slugs, results, strict=True):
            if isinstance(res, BaseException):
                self.summary.failed_projects[slug] = _describe(res)
                self.logger.warning("project %s failed: %s", slug, _describe(res))
            else:
                extracts += res.extracts
                watermarks.update(res.watermarks)
        try:
            with self.summary.timed("insights"):
                extracts += await org_insights_task(self.client, self.org.slug)
        except CircleCIError as e:
            self._failed(f"org summaries of {self.org.slug}", e)
        with self.summary.timed("land"):
            self.summary.add_rows(await asyncio.to_thread(land_task, self.lake, extracts))
        self.state.workflow_run_watermarks.update(watermarks)
        self.state.save(self.store)

    async def usage(self, start: datetime, end: datetime, workdir: str) -> None:
        """The usage export of [start, end]; the usage cursor once it landed."""
        try:
            with self.summary.timed("usage_export"):
                usage = await usage_export_task(self.client, self.cfg, self.store, start, end, workdir)
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
            tests = await job_tests_task(self.client, refs, self.state, self.cfg)
        with self.summary.timed("land"):
            self.summary.add_rows(await asyncio.to_thread(land_task, self.lake, [tests.extract]))
        self.summary.add_probes(tests, left_out=left_out, deferred=deferred)
        steps.remember_probes(self.state, refs, tests)
        self.state.save(self.store)

    def _failed(self, what: str, error: CircleCIError) -> None:
        self.summary.failed_org_calls[what] = _describe(error)
        self.logger.warning("%s failed: %s", what, _describe(error))


def build_and_render(lake: Lake, settings: Settings, summary: RunSummary, window_start: datetime | None) -> None:
    with summary.timed("build"):
        result = build_task(lake, settings)
    summary.models_built = len(result.models)
    summary.data_tests = len(result.tests)
    summary.data_tests_failed = [t.name for t in result.failed_tests]
    summary.highlights = warehouse_highlights(str(result.db_path), window_start.date() if window_start else None)
    if settings.render_dashboard:
        with summary.timed("dashboard"):
            summary.dashboard_path = render_task(settings)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@flow(name="circleci-nightly", description="Nightly CircleCI analytics: extract, land, build, render.")
async def nightly(settings: Settings | None = None) -> RunSummary:
    """Pull every org, land it, build the warehouse, render the dashboard.

    `settings` default to the environment and TOML file of the machine running the flow. The
    token is never part of them as a parameter (excluded from their serialized form): it comes
    from $CIRCLECI_TOKEN, in-process, or the Prefect Secret block `token_secret_block`.
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings)
    token = resolve_token(settings)
    orgs = settings.orgs
    if not orgs:
        raise SettingsError("no organisation configured: set [[orgs]] (or org_id and org_slug)")
    lake_root, warehouse_path = settings.lake_root, settings.warehouse_path
    lake = Lake(lake_root)
    summary = RunSummary("nightly", [o.slug for o in orgs], lake_root=lake_root, warehouse_path=warehouse_path)
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        # One writer at a time: a second run waits `lease_wait_seconds`, then fails naming this one.
        with lake.lease(owner=housekeeping.run_label("nightly"), wait_seconds=settings.lease_wait_seconds) as lease:
            summary.note_lease(lease)
            org_errors: list[CircleCIError] = []
            for org in orgs:
                try:
                    await run_org(org, pipeline_config(settings, org), token, lake, summary)
                except CircleCIError as e:
                    org_errors.append(e)
                    summary.failed_org_calls[f"org {org.slug}"] = _describe(e)
                    get_run_logger().error("org %s failed: %s", org.slug, _describe(e))
            if len(org_errors) == len(orgs):
                # Nothing was extracted: a wrong token, org id/slug or API URL. Say so, don't build.
                raise org_errors[0]
            state = PipelineState.load(LakeStateStore(lake), orgs[0].id)
            window_start = None
            if state.usage_exported_until:
                window_start = state.usage_exported_until - timedelta(days=max(1, settings.overlap_days))
            await asyncio.to_thread(build_and_render, lake, settings, summary, window_start)
    finally:
        if heartbeat:
            heartbeat.stop()
    summary.seconds = time.perf_counter() - t0
    await create_markdown_artifact(markdown=summary.markdown(), key="circleci-nightly-summary",
                                   description="What the nightly run landed, built and found")  # fmt: skip
    if summary.status == "failed":
        return Failed(message=f"data tests failed: {', '.join(summary.data_tests_failed)}", data=summary)
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
