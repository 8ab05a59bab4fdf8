"""The nightly flow: projects -> the catalogued streams of every project (Insights) -> usage
export -> job tests -> land -> build -> dashboard -> one markdown artifact.

One project failing does not lose the others, and nothing a run fails to fetch is lost:
watermarks advance per project and stream, and only once the data landed, and test metadata
is probed for every recent job the lake holds without it, so the next run fetches what this
one missed. Anything missed is counted in the summary and the run ends *Partially Completed*.
Slowly changing snapshots are read every `snapshot_refresh_days` (their watermarks say when
each was last read), so a night's run reads little more than what is new.

Retries: see `flows.tasks` (the client retries transient errors; Prefect only the usage export).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency
from prefect.states import Completed, Failed

from circleci_analytics.connectors import CircleCIClient, CircleCIError, Extract
from circleci_analytics.connectors.tests_metadata import DEFAULT_REPROBE_AFTER, JobRef, JobTestsResult
from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.flows.tasks import (
    build_and_render,
    land_task,
    land_usage_task,
    resolve_projects_task,
    resolve_token,
    usage_export_task,
)
from circleci_analytics.settings import Org, Settings, SettingsError, check_paths
from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.state import Documents

__all__ = ["nightly", "run_org"]

#: Prefect global concurrency limit (optional) on projects extracted at once.
INSIGHTS_CONCURRENCY_LIMIT = "circleci-insights"


# -- tasks (arguments are live objects, so no input caching) ----------------------------------
@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def project_streams_task(client: CircleCIClient, slug: str, state: PipelineState, settings: Settings,
                               limited: bool = False) -> steps.ProjectStreams:  # fmt: skip
    """Every catalogued stream of one project that is due.

    Projects run concurrently; `prefect gcl create circleci-insights --limit N` caps how many
    run at once across every worker (without that limit, only the client's own bounds apply).
    """
    if not limited:
        return await steps.extract_project_streams(client, slug, state, settings)
    async with concurrency(INSIGHTS_CONCURRENCY_LIMIT, occupy=1):
        return await steps.extract_project_streams(client, slug, state, settings)


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


# -- orchestration ----------------------------------------------------------------------------
async def run_org(org: Org, settings: Settings, token: str, lake: Lake, summary: RunSummary) -> None:
    """Extract and land one org. Each watermark is saved once its data has landed: a project
    that failed keeps its watermarks, the others advance; a failed org-level call is
    reported and the rest goes on."""
    store = lake.documents()
    state = PipelineState.load(store, org.id)
    now = steps.clock(settings)
    since = now - timedelta(days=settings.tests_lookback_days)  # test metadata for the jobs started since
    state.prune(tests_since=since, names_since=now - DEFAULT_REPROBE_AFTER,
                watermarks_since=now - steps.INSIGHTS_RETENTION)  # fmt: skip
    start, end = steps.usage_window(state, settings)
    steps.record_history_start(state, start)
    with housekeeping.make_scratch_dir() as scratch:
        async with steps.make_client(settings, token) as client:
            run = _OrgRun(org, settings, client, lake, store, state, summary, get_run_logger())
            try:
                with summary.timed("projects"):
                    projects, unknown = await resolve_projects_task(client, org)
                summary.unknown_projects += unknown
                summary.add_rows(await asyncio.to_thread(land_task, lake, [projects]))
                # a not-null column: pyarrow-stubs type every to_pylist() item as nullable
                slugs: list[str] = projects.table.column("project_slug").to_pylist()  # type: ignore[assignment]
                await run.streams(slugs)
                await run.usage(start, end, scratch)
                await run.job_tests(projects, since)
            finally:
                summary.add_calls(client.stats)


@dataclass
class _OrgRun:
    """The stages of one org's run; each lands its data, then saves the watermarks it advanced."""

    org: Org
    settings: Settings
    client: CircleCIClient
    lake: Lake
    store: Documents
    state: PipelineState
    summary: RunSummary
    logger: Any

    async def streams(self, slugs: list[str]) -> None:
        """Every project's catalogued streams; the watermarks of the projects that landed."""
        self.logger.info("org %s: %d projects", self.org.slug, len(slugs))
        limited = await _concurrency_limit_exists(INSIGHTS_CONCURRENCY_LIMIT)
        with self.summary.timed("insights"):
            results = await asyncio.gather(
                *(project_streams_task(self.client, s, self.state, self.settings, limited) for s in slugs),
                return_exceptions=True,
            )
        extracts: list[Extract] = []
        landed = []
        for slug, res in zip(slugs, results, strict=True):
            if isinstance(res, BaseException):
                self.summary.failed_projects[slug] = _describe(res)
                self.logger.warning("project %s failed: %s", slug, _describe(res))
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
        self.summary.failed_org_calls[what] = _describe(error)
        self.logger.warning("%s failed: %s", what, _describe(error))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@flow(name="circleci-nightly", description="Nightly CircleCI analytics: extract, land, build, render.")
async def nightly(settings: Settings | None = None) -> RunSummary | State[RunSummary]:
    """Pull every org, land it, build the warehouse, render the dashboard.

    `settings` default to the environment and TOML file of the machine running the flow. The
    token is never part of them as a parameter (excluded from their serialized form): it comes
    from $CIRCLECI_TOKEN, in-process, or the Prefect Secret block `token_secret_block`.
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings)
    token = await resolve_token(settings)
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
                    await run_org(org, settings, token, lake, summary)
                except CircleCIError as e:
                    org_errors.append(e)
                    summary.failed_org_calls[f"org {org.slug}"] = _describe(e)
                    get_run_logger().error("org %s failed: %s", org.slug, _describe(e))
            if len(org_errors) == len(orgs):
                # Nothing was extracted: a wrong token, org id/slug or API URL. Say so, don't build.
                raise org_errors[0]
            state = PipelineState.load(lake.documents(), orgs[0].id)
            window_start = None
            if state.usage_exported_until:
                window_start = state.usage_exported_until - timedelta(days=max(1, settings.overlap_days))
            await asyncio.to_thread(build_and_render, lake, settings, summary, window_start)
    finally:
        if heartbeat:
            heartbeat.stop()
    summary.seconds = time.perf_counter() - t0
    await acreate_markdown_artifact(markdown=summary.markdown(), key="circleci-nightly-summary",
                                   description="What the nightly run landed, built and found")  # fmt: skip
    if summary.status == "failed":
        return Failed(message=f"data tests failed: {', '.join(summary.data_tests_failed)}", data=summary)
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
