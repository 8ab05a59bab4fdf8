"""The pipeline's steps as plain functions (the Prefect flows only orchestrate them).

API -> connectors -> lake -> warehouse build -> dashboard. Each step is idempotent: landing
replaces whole windows/keys, the usage export resumes from durable state, test metadata is
fetched only for jobs not landed before.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from circleci_analytics.connectors import (
    ALL_BRANCHES,
    DEFAULT_BRANCH,
    CircleCIClient,
    CircleCIError,
    Extract,
    JobRef,
    NotFound,
    extract_branches,
    extract_flaky_tests,
    extract_job_tests,
    extract_job_timeseries,
    extract_org_summary,
    extract_project_summary,
    extract_projects,
    extract_test_metrics,
    extract_workflow_job_metrics,
    extract_workflow_metrics,
    extract_workflow_runs,
    extract_workflow_summary,
)
from circleci_analytics.connectors.usage_export import UsageExportResult, export_usage
from circleci_analytics.warehouse import Lake

from circleci_analytics.flows.state import LakeStateStore, PipelineState

__all__ = [
    "PipelineConfig",
    "ProjectInsights",
    "discover_project_slugs",
    "extract_org_insights",
    "extract_project_insights",
    "export_usage_window",
    "job_refs_from_usage",
    "fetch_new_job_tests",
    "land_extracts",
    "usage_window",
]

logger = logging.getLogger("circleci_analytics.flows")


@dataclass
class PipelineConfig:
    """Everything a run needs except the token (kept out of flow parameters and logs)."""

    org_id: str
    org_slug: str
    projects: list[str] = field(default_factory=list)
    api_base_url: str = "https://circleci.com/api/v2"
    lake_root: str = "data/lake"
    warehouse_path: str = "data/warehouse.duckdb"
    dashboard_dir: str = "data/dashboard"
    workdir: str | None = None  # scratch for export parts; a temp dir when None
    price_per_credit: float = 0.0006
    rightsizing_headroom: float = 0.8
    #: First run: how far back to export usage and pull workflow runs.
    initial_lookback_days: int = 30
    overlap_days: int = 2
    tests_lookback_days: int = 14
    max_concurrency: int = 8
    export_poll_seconds: float = 360.0
    job_include: list[str] = field(default_factory=list)
    job_exclude: list[str] = field(default_factory=list)
    rate_limits: dict[str, float | None] | None = None
    #: Override "now" (demo, tests); None = the real clock.
    now: datetime | None = None

    def clock(self) -> datetime:
        return self.now or datetime.now(UTC)


def make_client(cfg: PipelineConfig, token: str) -> CircleCIClient:
    return CircleCIClient(token, cfg.api_base_url, max_concurrency=cfg.max_concurrency, rate_limits=cfg.rate_limits)


# -- projects ----------------------------------------------------------------------------------
async def discover_project_slugs(client: CircleCIClient, org_slug: str) -> list[str]:
    """Projects named by the org summary, as `<org_slug>/<name>` slugs.

    GitHub-App/GitLab projects (`circleci/<org>/<project>` slugs) cannot be derived from a
    name: configure those explicitly.
    """
    summary = await extract_org_summary(client, org_slug, "last-90-days")
    names = summary.projects.table.column("project_name").to_pylist()
    return sorted({f"{org_slug}/{n}" for n in names if n})


async def resolve_projects(client: CircleCIClient, slugs: list[str]) -> tuple[Extract, list[str]]:
    """Resolve slugs to ids and names. Unknown slugs are returned (reported by the run),
    not fatal for the others; all unknown is an error naming them."""
    try:
        return await extract_projects(client, slugs), []
    except NotFound:
        pass
    good, bad = [], []
    for slug in slugs:
        try:
            await extract_projects(client, [slug])
            good.append(slug)
        except NotFound:
            bad.append(slug)
    if not good:
        raise NotFound(404, "no configured project exists or is visible to this token", "GET", "/project/{slug}",
                       hint=f"check the project slugs: {', '.join(bad) or '(none configured)'}")  # fmt: skip
    return await extract_projects(client, good), bad


# -- insights ----------------------------------------------------------------------------------
@dataclass
class ProjectInsights:
    project_slug: str
    extracts: list[Extract]
    watermarks: dict[str, datetime]


def _wm_key(project: str, workflow: str) -> str:
    return f"{project}\t{workflow}"


async def extract_project_insights(
    client: CircleCIClient, project_slug: str, state: PipelineState, cfg: PipelineConfig
) -> ProjectInsights:
    """Every Insights stream of one project, workflow runs incrementally from watermarks.

    All calls are independent except that the workflow names come from the all-branches
    metrics, so everything else is issued at once and each workflow's calls as soon as the
    names are known; the client's semaphore bounds the concurrency.
    """
    now = cfg.clock()
    watermarks: dict[str, datetime] = {}
    lookback = timedelta(days=cfg.initial_lookback_days)

    async def _gather(*aws: Any) -> list[Any]:
        # Results in order; on the first error the others are cancelled and that error is
        # raised as is (no ExceptionGroup), as a sequence of awaits would.
        tasks = [asyncio.ensure_future(a) for a in aws]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def per_workflow(wf: str) -> list[Extract]:
        s_default, s_all, job_metrics, timeseries, tm, runs = await _gather(
            extract_workflow_summary(client, project_slug, wf, scope=DEFAULT_BRANCH),
            extract_workflow_summary(client, project_slug, wf, scope=ALL_BRANCHES),
            extract_workflow_job_metrics(client, project_slug, wf, scope=DEFAULT_BRANCH),
            extract_job_timeseries(client, project_slug, wf, start=now - timedelta(days=14), end=now),
            extract_test_metrics(client, project_slug, wf),
            extract_workflow_runs(
                client, project_slug, wf, scope=ALL_BRANCHES, now=now, lookback=min(lookback, timedelta(days=90)),
                watermark=state.workflow_run_watermarks.get(_wm_key(project_slug, wf)),
                overlap=timedelta(days=cfg.overlap_days),
            ),
        )  # fmt: skip
        if runs.watermark is not None:
            watermarks[_wm_key(project_slug, wf)] = runs.watermark
        return [s_default, s_all, job_metrics, timeseries, tm.tests, tm.runs, runs]

    async def workflows_of_project() -> tuple[Extract, list[list[Extract]]]:
        metrics_all = await extract_workflow_metrics(client, project_slug, scope=ALL_BRANCHES)
        workflows = sorted(set(metrics_all.table.column("workflow_name").to_pylist()))
        return metrics_all, await _gather(*(per_workflow(wf) for wf in workflows))

    (metrics_all, per_wf), metrics_default, summary, branches, flaky = await _gather(
        workflows_of_project(),
        extract_workflow_metrics(client, project_slug, scope=DEFAULT_BRANCH),
        extract_project_summary(client, project_slug, "last-30-days"),
        extract_branches(client, project_slug),
        extract_flaky_tests(client, project_slug),
    )
    out: list[Extract] = [metrics_default, metrics_all, summary.project, summary.workflows, summary.workflow_branches,
                          branches, flaky]  # fmt: skip
    for extracts in per_wf:
        out += extracts
    return ProjectInsights(project_slug, out, watermarks)


async def extract_org_insights(client: CircleCIClient, org_slug: str) -> list[Extract]:
    out: list[Extract] = []
    for window in ("last-7-days", "last-30-days", "last-90-days"):
        s = await extract_org_summary(client, org_slug, window)
        out += [s.org, s.projects]
    return out


# -- usage export ------------------------------------------------------------------------------
def usage_window(state: PipelineState, cfg: PipelineConfig, start: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end] to export: from the last export minus the overlap, else the initial look-back."""
    now = cfg.clock()
    if start is None:
        if state.usage_exported_until is not None:
            start = state.usage_exported_until - timedelta(days=cfg.overlap_days)
        else:
            start = now - timedelta(days=cfg.initial_lookback_days)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, now


async def export_usage_window(
    client: CircleCIClient, cfg: PipelineConfig, store: LakeStateStore, start: datetime, end: datetime,
    workdir: Path, **kwargs: Any,
) -> UsageExportResult:  # fmt: skip
    """Create/resume, poll, download and merge the usage export for [start, end]."""
    return await export_usage(
        client, cfg.org_id, start, end, workdir=workdir, state_store=store,
        poll_interval=cfg.export_poll_seconds, now=cfg.now and (lambda: cfg.clock()), **kwargs,
    )  # fmt: skip


# -- job test metadata -------------------------------------------------------------------------
#: The usage-export columns a job reference needs (read only these for test discovery).
JOB_REF_COLUMNS = ["project_id", "job_run_number", "job_name", "workflow_id", "pipeline_id",
                   "job_run_started_at", "job_build_status"]  # fmt: skip


def job_refs_from_usage(usage: pa.Table, projects: Extract, since: datetime) -> list[JobRef]:
    """Jobs to probe for tests: usage rows (one per executed job) started since `since`,
    mapped from PROJECT_ID to the configured slug."""
    slug_by_id = dict(zip(projects.table.column("project_id").to_pylist(), projects.table.column("project_slug").to_pylist()))
    recent = usage.filter(pc.greater_equal(usage.column("job_run_started_at"), pa.scalar(since, pa.timestamp("us", tz="UTC"))))
    refs = []
    for row in recent.select(JOB_REF_COLUMNS).to_pylist():
        slug = slug_by_id.get(row["project_id"])
        if slug is None:
            continue  # a project not configured for this run
        refs.append(JobRef(
            project_slug=slug, job_number=row["job_run_number"], job_name=row["job_name"], job_type="build",
            workflow_id=row["workflow_id"], pipeline_id=row["pipeline_id"], job_started_at=row["job_run_started_at"],
            job_status=row["job_build_status"],
        ))  # fmt: skip
    return refs


async def fetch_new_job_tests(client: CircleCIClient, refs: list[JobRef], state: PipelineState, cfg: PipelineConfig):
    """Tests of jobs not landed before (state.test_probe); returns the connectors' result."""
    return await extract_job_tests(
        client, refs, state=state.test_probe, include=cfg.job_include, exclude=cfg.job_exclude, now=cfg.clock()
    )


# -- landing -----------------------------------------------------------------------------------
def land_extracts(lake: Lake, extracts: list[Extract]) -> dict[str, int]:
    """Land extracts in the lake tables named like their streams, one write per table
    (extracts of one stream are concatenated first); returns rows per table."""
    by_stream: dict[str, list[pa.Table]] = {}
    for e in extracts:
        by_stream.setdefault(e.stream, []).append(e.table)
    rows: dict[str, int] = {}
    for stream, tables in by_stream.items():
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        rows[stream] = lake.land(stream, table).rows_in
    return rows


def land_usage(lake: Lake, result: UsageExportResult) -> dict[str, int]:
    """Land the merged export, partition by partition: the org's partitions in the window
    are replaced whole (an empty export empties them, and only them)."""
    usage = lake.land_file("usage_job_runs", result.output, window=(result.start, result.end),
                           scope={"org_id": result.org_id})  # fmt: skip
    out = {"usage_job_runs": usage.rows_in}
    if result.quarantined_rows:
        out["usage_quarantine"] = lake.land_file("usage_quarantine", result.quarantine).rows_in
    return out


def scratch_dir(cfg: PipelineConfig) -> tempfile.TemporaryDirectory | None:
    return None if cfg.workdir else tempfile.TemporaryDirectory(prefix="circleci-analytics-")


__all__ += ["CircleCIError", "land_usage", "make_client", "resolve_projects", "scratch_dir"]
