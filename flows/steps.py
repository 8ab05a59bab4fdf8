"""The pipeline's steps as plain functions (the Prefect flows only orchestrate them).

API -> connectors -> lake -> warehouse build -> dashboard. Each step is idempotent: landing
replaces whole windows/keys, the usage export resumes from durable state. Work that depends
on a parent stream is derived from what the lake holds, not from what this run fetched: test
metadata is probed for every job run of the look-back (`usage_job_runs`) whose tests have
not landed (`job_tests`), whichever night exported it, so a failed or skipped probe is simply
probed again by the next run.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from circleci_analytics.connectors import (
    ALL_BRANCHES,
    DEFAULT_BRANCH,
    CircleCIClient,
    CircleCIError,
    Extract,
    JobRef,
    JobTestsResult,
    NotFound,
    ProbeState,
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
from circleci_analytics.warehouse.lake import encode_partition_value
from circleci_analytics.warehouse.tables import table_spec

from circleci_analytics.flows.housekeeping import make_scratch_dir
from circleci_analytics.flows.state import LakeStateStore, PipelineState

__all__ = [
    "PipelineConfig",
    "ProjectInsights",
    "discover_project_slugs",
    "extract_org_insights",
    "extract_project_insights",
    "export_usage_window",
    "job_refs_from_usage",
    "fetch_job_tests",
    "history_start",
    "record_history_start",
    "remember_probes",
    "unprobed_job_refs",
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
#: How far back Insights answers (workflow runs older than this are gone).
INSIGHTS_RETENTION = timedelta(days=90)


@dataclass
class ProjectInsights:
    project_slug: str
    extracts: list[Extract]
    watermarks: dict[tuple[str, str], datetime]  # (project, workflow) -> newest run created_at


async def extract_project_insights(
    client: CircleCIClient, project_slug: str, state: PipelineState, cfg: PipelineConfig
) -> ProjectInsights:
    """Every Insights stream of one project, workflow runs incrementally from watermarks
    (from the org's history start for a workflow without one, at most Insights' 90 days).

    All calls are independent except that the workflow names come from the all-branches
    metrics, so everything else is issued at once and each workflow's calls as soon as the
    names are known; the client's semaphore bounds the concurrency.
    """
    now = cfg.clock()
    watermarks: dict[tuple[str, str], datetime] = {}
    lookback = min(now - history_start(state, cfg), INSIGHTS_RETENTION)

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
                client, project_slug, wf, scope=ALL_BRANCHES, now=now, lookback=lookback,
                watermark=state.workflow_run_watermarks.get((project_slug, wf)),
                overlap=timedelta(days=cfg.overlap_days),
            ),
        )  # fmt: skip
        if runs.watermark is not None:
            watermarks[(project_slug, wf)] = runs.watermark
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
    """[start, end] to export: from the last export minus the overlap, else from the start of
    the org's history (the initial look-back, from midnight)."""
    now = cfg.clock()
    if start is None:
        if state.usage_exported_until is not None:
            start = state.usage_exported_until - timedelta(days=cfg.overlap_days)
        else:
            start = history_start(state, cfg)
    return _midnight(start), now


def history_start(state: PipelineState, cfg: PipelineConfig) -> datetime:
    """Where the org's history in the lake starts: the first usage-export window's start
    (recorded in the state by the first run), else where this run's first window will start."""
    return state.history_start or _midnight(cfg.clock() - timedelta(days=cfg.initial_lookback_days))


def record_history_start(state: PipelineState, first_window_start: datetime) -> None:
    """On the org's first run (nothing exported yet), its history starts where the first usage
    window does. A state from before history starts were recorded gets none: `history_start`
    then falls back to the initial look-back, as before."""
    if state.history_start is None and state.usage_exported_until is None:
        state.history_start = first_window_start


def _midnight(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


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
    rows = (row for batch in recent.select(JOB_REF_COLUMNS).to_batches(max_chunksize=10_000) for row in batch.to_pylist())
    for row in rows:  # a batch of dicts at a time
        slug = slug_by_id.get(row["project_id"])
        if slug is None:
            continue  # a project not configured for this run
        refs.append(JobRef(
            project_slug=slug, job_number=row["job_run_number"], job_name=row["job_name"], job_type="build",
            workflow_id=row["workflow_id"], pipeline_id=row["pipeline_id"], job_started_at=row["job_run_started_at"],
            job_status=row["job_build_status"],
        ))  # fmt: skip
    return refs


def read_recent(lake: Lake, table: str, columns: list[str], time_column: str, since: datetime,
                scope: dict[str, str] | None = None) -> pa.Table:  # fmt: skip
    """`columns` of the rows of a lake table with `time_column` >= `since` (and the
    partition values of `scope`, e.g. ``{"org_id": ...}``), reading only the partitions that
    can hold them, only those columns, and only matching row groups (never the whole table)."""
    spec = table_spec(table)
    date_keys = [key for key, kind, _ in spec.partition_by if kind == "date"]
    prefix = lake.table_path(table) + "/"
    wanted = {key: encode_partition_value(value) for key, value in (scope or {}).items()}
    files = []
    for path in lake.files(table):
        parts = dict(seg.split("=", 1) for seg in path.removeprefix(prefix).split("/") if "=" in seg)
        if any(parts.get(key, value) != value for key, value in wanted.items()):
            continue
        day = next((parts[k] for k in date_keys if k in parts), None)
        if day not in (None, "__null__") and day < since.date().isoformat():
            continue
        files.append(path)
    if not files:
        return spec.schema.empty_table().select(columns)
    dataset = ds.dataset(files, schema=spec.schema, filesystem=lake.fs, format="parquet")
    return dataset.to_table(columns=columns, filter=ds.field(time_column) >= pa.scalar(since, pa.timestamp("us", tz="UTC")))


def unprobed_job_refs(lake: Lake, org_id: str, projects: Extract, since: datetime,
                      state: PipelineState) -> tuple[list[JobRef], dict[str, int]]:  # fmt: skip
    """Jobs whose tests to fetch: every job run of the org's configured projects started since
    `since` (`usage_job_runs`, whichever run exported it) whose tests have not landed
    (`job_tests`) and that the state does not know to have none (the job, or its name while
    it is in the state: prune the state first). Returns them and the jobs left out per reason.

    Filtered with polars before any Python object is made: most jobs of an org have no tests,
    and they are known by name after one probe."""
    usage = pl.from_arrow(read_recent(lake, "usage_job_runs", JOB_REF_COLUMNS, "job_run_started_at", since,
                                      {"org_id": org_id}))  # fmt: skip
    jobs = usage.join(pl.from_arrow(projects.table.select(["project_id", "project_slug"])), on="project_id")
    landed = pl.from_arrow(read_recent(lake, "job_tests", ["project_slug", "job_number"], "job_started_at", since))
    left_out: dict[str, int] = {}
    for reason, known in (
        ("landed_before", landed.rename({"job_number": "job_run_number"})),
        ("known_without_tests", _frame(["project_slug", "job_run_number"], state.jobs_without_tests, jobs.schema)),
        ("known_without_tests", _frame(["project_slug", "job_name"], state.names_without_tests, jobs.schema)),
    ):
        before = jobs.height
        jobs = jobs.join(known.unique(), on=known.columns, how="anti")
        left_out[reason] = left_out.get(reason, 0) + before - jobs.height
    return job_refs_from_usage(jobs.drop("project_slug").to_arrow(), projects, since), left_out


def _frame(columns: list[str], keys: Iterable[tuple], schema: Any) -> pl.DataFrame:
    return pl.DataFrame(list(keys), schema={c: schema[c] for c in columns}, orient="row")


async def fetch_job_tests(client: CircleCIClient, refs: list[JobRef], state: PipelineState,
                          cfg: PipelineConfig) -> JobTestsResult:  # fmt: skip
    """Tests of `refs` (jobs whose tests have not landed), skipping the jobs and job names
    known to have none (`state`); returns the connectors' result."""
    known = ProbeState(seen=set(state.jobs_without_tests), no_test_jobs=dict(state.names_without_tests))
    return await extract_job_tests(
        client, refs, state=known, include=cfg.job_include, exclude=cfg.job_exclude, now=cfg.clock()
    )


def remember_probes(state: PipelineState, refs: list[JobRef], result: JobTestsResult) -> None:
    """Record in `state` the answers the lake cannot show once `result` has landed: jobs that
    reported no tests, and job names known to have none."""
    landed = set(zip(result.extract.table.column("project_slug").to_pylist(),
                     result.extract.table.column("job_number").to_pylist(), strict=True))  # fmt: skip
    started = {(r.project_slug, r.job_number): r.job_started_at for r in refs}
    for key in result.state.seen - set(state.jobs_without_tests) - landed:
        when = started.get(key)
        if when is not None:
            state.jobs_without_tests[key] = when
    state.names_without_tests = dict(result.state.no_test_jobs)


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
    """A temporary folder for the run's downloads (marked with its owner, so the next run can
    remove it if this process dies), unless the configuration names one."""
    return None if cfg.workdir else make_scratch_dir()


__all__ += ["CircleCIError", "land_usage", "make_client", "resolve_projects", "scratch_dir"]
