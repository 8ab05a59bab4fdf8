"""The pipeline's steps as plain functions (the Prefect flows only orchestrate them).

API -> connectors -> lake -> warehouse build -> dashboard. Each step is idempotent: landing
replaces whole windows/keys, the usage export resumes from durable state. The streams come
from the catalogue (``connectors.CATALOGUE``): `extract_project_streams` runs every stream
the generic extractor handles, parents before children, each when its refresh is due and
from its watermark. Work that depends on a parent stream in the lake is derived from what the
lake holds, not from what this run fetched: test metadata is probed for every job run of the
look-back (`usage_job_runs`) whose tests have not landed (`job_tests`), whichever night
exported it, so a failed or skipped probe is simply probed again by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from circleci_analytics.connectors import (
    CATALOGUE,
    CircleCIClient,
    Extract,
    JobRef,
    JobTestsResult,
    NotFound,
    ProbeState,
    RetryPolicy,
    Stream,
    extract_job_tests,
    extract_projects,
    extract_stream,
)
from circleci_analytics.connectors.extract import gather
from circleci_analytics.connectors.usage_export import UsageExportResult, export_usage
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.settings import Org, Settings
from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.lake import encode_partition_value
from circleci_analytics.warehouse.state import Documents, Watermarks
from circleci_analytics.warehouse.tables import table_spec

__all__ = [
    "INSIGHTS_RETENTION",
    "ProjectStreams",
    "clock",
    "due",
    "export_usage_window",
    "extract_project_streams",
    "fetch_job_tests",
    "history_start",
    "job_refs_from_usage",
    "land_extracts",
    "land_usage",
    "make_client",
    "record_history_start",
    "remember_probes",
    "resolve_projects",
    "unprobed_job_refs",
    "usage_window",
]

#: How far back Insights answers (watermarks older than this are pruned).
INSIGHTS_RETENTION = timedelta(days=90)


def clock(settings: Settings) -> datetime:
    """The run's "now": the pinned one (simulator, tests) or the real clock."""
    return settings.now or datetime.now(UTC)


def make_client(settings: Settings, token: str) -> CircleCIClient:
    return CircleCIClient(token, settings.api_base_url, max_concurrency=settings.max_concurrency,
                          rate_limits=settings.rate_limits,
                          retry=RetryPolicy(patience=settings.rate_limit_patience_seconds))  # fmt: skip


# -- projects ----------------------------------------------------------------------------------
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


# -- the catalogued streams of a project ---------------------------------------------------------
#: The streams the generic extractor runs (the others have a handler module of their own).
GENERIC = [s for s in CATALOGUE.values() if s.handler is None]


@dataclass
class ProjectStreams:
    project_slug: str
    extracts: list[Extract]
    watermarks: Watermarks  # what these extracts advance: to be merged once they have landed


def due(stream: Stream, read_at: datetime | None, now: datetime, settings: Settings) -> bool:
    """Whether a stream's key is read this run: every run, or a slow snapshot last read
    `snapshot_refresh_days` calendar days ago or more (or never)."""
    if stream.refresh == "every run" or read_at is None:
        return True
    return (now.date() - read_at.date()).days >= settings.snapshot_refresh_days


async def extract_project_streams(client: CircleCIClient, project_slug: str, state: PipelineState,
                                  settings: Settings, history_from: datetime | None = None) -> ProjectStreams:  # fmt: skip
    """Every generic catalogued stream of one project: the project's own streams, then each
    child stream for every key its parent's rows hold (each workflow of `workflow_metrics`),
    concurrently (the client bounds the requests in flight), each when due, incremental ones
    from their watermark minus the overlap (from the org's history start for a key without
    one, at most the API's retention). `history_from` (a backfill) reads incremental streams
    from it (at most the retention) whatever their watermarks. The first error cancels the
    rest and is raised."""
    now = clock(settings)
    start = history_from or history_start(state, settings)
    out = ProjectStreams(project_slug, [], Watermarks())

    async def run(stream: Stream, context: dict[str, Any]) -> None:
        key = stream.key(context)
        if not due(stream, state.watermarks.read_at(stream.name, key), now, settings):
            return
        since = watermark = None
        if stream.cursor is not None:
            watermark = state.watermarks.cursor(stream.name, key)
            since = min(watermark - timedelta(days=settings.overlap_days) if watermark and history_from is None
                        else max(start, now - stream.cursor.retention), now)  # fmt: skip
        extract = await extract_stream(client, stream, context, since=since, now=now, watermark=watermark)
        out.extracts.append(extract)
        out.watermarks.advance(stream.name, key, cursor=extract.watermark, read_at=now)
        await gather(*(run(child, dict(zip(child.parent_keys, row, strict=True)))
                        for child in GENERIC if child.parent == stream.name
                        for row in _distinct(extract.table, child.parent_keys)))  # fmt: skip

    await gather(*(run(s, {"project_slug": project_slug}) for s in GENERIC if s.parent == "projects"))
    return out


def _distinct(table: pa.Table, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The distinct values of `columns` in `table`, sorted (the keys a child stream is read for)."""
    return sorted(set(zip(*(table.column(c).to_pylist() for c in columns), strict=True)))


# -- usage export ------------------------------------------------------------------------------
def usage_window(state: PipelineState, settings: Settings, start: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end] to export: from the last export minus the overlap, else from the start of
    the org's history (the initial look-back, from midnight)."""
    now = clock(settings)
    if start is None:
        if state.usage_exported_until is not None:
            start = state.usage_exported_until - timedelta(days=settings.overlap_days)
        else:
            start = history_start(state, settings)
    return _midnight(start), now


def history_start(state: PipelineState, settings: Settings) -> datetime:
    """Where the org's history in the lake starts: the first usage-export window's start
    (recorded in the state by the first run), else where this run's first window will start."""
    return state.history_start or _midnight(clock(settings) - timedelta(days=settings.initial_lookback_days))


def record_history_start(state: PipelineState, first_window_start: datetime) -> None:
    """On the org's first run (nothing exported yet), its history starts where the first usage
    window does. A state from before history starts were recorded gets none: `history_start`
    then falls back to the initial look-back, as before."""
    if state.history_start is None and state.usage_exported_until is None:
        state.history_start = first_window_start


def _midnight(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


async def export_usage_window(
    client: CircleCIClient, settings: Settings, org: Org, store: Documents, start: datetime, end: datetime,
    workdir: Path, **kwargs: Any,
) -> UsageExportResult:  # fmt: skip
    """Create/resume, poll, download and merge the usage export for [start, end]."""
    return await export_usage(
        client, org.id, start, end, workdir=workdir, state_store=store, poll_interval=settings.export_poll_seconds,
        now=(lambda: clock(settings)) if settings.now else None, **kwargs,
    )  # fmt: skip


# -- job test metadata -------------------------------------------------------------------------
#: The usage-export columns a job reference needs (read only these for test discovery).
JOB_REF_COLUMNS = ["project_id", "job_run_number", "job_name", "workflow_id", "pipeline_id",
                   "job_run_started_at", "job_build_status"]  # fmt: skip


def job_refs_from_usage(usage: pa.Table, projects: Extract, since: datetime) -> list[JobRef]:
    """Jobs to probe for tests: usage rows (one per executed job) started since `since`,
    mapped from PROJECT_ID to the configured slug."""
    slug_by_id = dict(
        zip(projects.table.column("project_id").to_pylist(), projects.table.column("project_slug").to_pylist())
    )
    recent = usage.filter(
        pc.greater_equal(usage.column("job_run_started_at"), pa.scalar(since, pa.timestamp("us", tz="UTC")))
    )
    refs = []
    rows = (
        row for batch in recent.select(JOB_REF_COLUMNS).to_batches(max_chunksize=10_000) for row in batch.to_pylist()
    )
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
        if day is not None and day != "__null__" and day < since.date().isoformat():
            continue
        files.append(path)
    if not files:
        return spec.schema.empty_table().select(columns)
    dataset = ds.dataset(files, schema=spec.schema, filesystem=lake.fs, format="parquet")
    return dataset.to_table(
        columns=columns, filter=ds.field(time_column) >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
    )


def unprobed_job_refs(lake: Lake, org_id: str, projects: Extract, since: datetime,
                      state: PipelineState) -> tuple[list[JobRef], dict[str, int]]:  # fmt: skip
    """Jobs whose tests to fetch: every job run of the org's configured projects started since
    `since` (`usage_job_runs`, whichever run exported it) whose tests have not landed
    (`job_tests`) and that the state does not know to have none (the job, or its name while
    it is in the state: prune the state first). Returns them and the jobs left out per reason.

    Filtered with polars before any Python object is made: most jobs of an org have no tests,
    and they are known by name after one probe."""
    usage = pl.DataFrame(read_recent(lake, "usage_job_runs", JOB_REF_COLUMNS, "job_run_started_at", since,
                                      {"org_id": org_id}))  # fmt: skip
    jobs = usage.join(pl.DataFrame(projects.table.select(["project_id", "project_slug"])), on="project_id")
    landed = pl.DataFrame(read_recent(lake, "job_tests", ["project_slug", "job_number"], "job_started_at", since))
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
                          settings: Settings) -> JobTestsResult:  # fmt: skip
    """Tests of `refs` (jobs whose tests have not landed), skipping the jobs and job names
    known to have none (`state`); returns the connectors' result."""
    known = ProbeState(seen=set(state.jobs_without_tests), no_test_jobs=dict(state.names_without_tests))
    return await extract_job_tests(client, refs, state=known, include=settings.job_include,
                                   exclude=settings.job_exclude, now=clock(settings))  # fmt: skip


def remember_probes(state: PipelineState, refs: list[JobRef], result: JobTestsResult) -> None:
    """Record in `state` the answers the lake cannot show once `result` has landed: jobs that
    reported no tests, and job names known to have none."""
    landed: set[tuple[Any, Any]] = set(zip(result.extract.table.column("project_slug").to_pylist(),
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
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
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
