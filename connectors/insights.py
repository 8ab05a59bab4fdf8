"""Insights extractors: API records -> Arrow tables (schemas in ``connectors.schemas``).

Every function takes an open ``CircleCIClient`` and returns ``Extract`` objects
(or a small named tuple of them when one endpoint feeds several tables). Parsing is
tolerant where the API is known to vary: nullable integers, flaky-test keys in
kebab-case (spec) or snake_case (live), missing optional test-metric fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.streams import (
    ALL_BRANCHES,
    DEFAULT_BRANCH,
    REPORTING_WINDOWS,
    STREAMS,
    Extract,
    build_table,
    fetch_records,
    parse_timestamp,
    scope_params,
    utcnow,
)

__all__ = [
    "DEFAULT_OVERLAP",
    "MAX_RUNS_WINDOW",
    "OrgSummary",
    "ProjectSummary",
    "TestMetrics",
    "extract_branches",
    "extract_flaky_tests",
    "extract_job_timeseries",
    "extract_org_summary",
    "extract_project_summary",
    "extract_test_metrics",
    "extract_workflow_job_metrics",
    "extract_workflow_metrics",
    "extract_workflow_runs",
    "extract_workflow_summary",
    "run_windows",
]

DEFAULT_OVERLAP = timedelta(days=2)
MAX_RUNS_WINDOW = timedelta(days=90)  # end-date may be at most 90 days after start-date
INSIGHTS_RETENTION = timedelta(days=90)


class OrgSummary(NamedTuple):
    org: Extract  # stream "org_summary"
    projects: Extract  # stream "org_project_summary"


class ProjectSummary(NamedTuple):
    project: Extract  # "project_summary"
    workflows: Extract  # "project_workflow_summary"
    workflow_branches: Extract  # "project_workflow_branch_summary"


class TestMetrics(NamedTuple):
    __test__ = False  # not a pytest class

    tests: Extract  # "test_metrics": most failed + slowest tests
    runs: Extract  # "test_metrics_runs": per workflow run test counts


# -- value helpers ----------------------------------------------------------------------------
def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"expected an integer, got {value!r}") from exc


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"expected a number, got {value!r}") from exc


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _obj(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _durations(dm: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "duration_min_seconds": _int(dm.get("min")),
        "duration_mean_seconds": _int(dm.get("mean")),
        "duration_median_seconds": _int(dm.get("median")),
        "duration_p95_seconds": _int(dm.get("p95")),
        "duration_max_seconds": _int(dm.get("max")),
        "duration_stddev_seconds": _float(dm.get("standard_deviation")),
    }


def _check_window(reporting_window: str) -> None:
    if reporting_window not in REPORTING_WINDOWS:
        raise ValueError(f"reporting_window must be one of {REPORTING_WINDOWS}, got {reporting_window!r}")


def _project(slug: str) -> str:
    return f"project {slug!r}"


def _workflow(slug: str, name: str) -> str:
    return f"workflow {name!r} of project {slug!r}"


# -- org / project summaries ----------------------------------------------------------------
async def extract_org_summary(
    client: CircleCIClient,
    org_slug: str,
    reporting_window: str = "last-90-days",
    *,
    project_names: Sequence[str] | None = None,
) -> OrgSummary:
    """GET /insights/{org-slug}/summary -> org totals and per-project totals for one window."""
    _check_window(reporting_window)
    at = utcnow()
    (body,) = await fetch_records(
        client,
        STREAMS["org_summary"],
        org_slug=org_slug,
        params={"reporting-window": reporting_window, "project-names": list(project_names or [])},
        resource=f"org {org_slug!r}",
    )
    org_data = _obj(body, "org_data")
    m, t = _obj(org_data, "metrics"), _obj(org_data, "trends")
    base = {"org_slug": org_slug, "reporting_window": reporting_window, "extracted_at": at}
    org_row = {
        **base,
        "total_runs": _int(m.get("total_runs")),
        "total_duration_seconds": _int(m.get("total_duration_secs")),
        "total_credits_used": _int(m.get("total_credits_used")),
        "success_rate": _float(m.get("success_rate")),
        "throughput_runs_per_day": _float(m.get("throughput")),
        "trend_total_runs": _float(t.get("total_runs")),
        "trend_total_duration_seconds": _float(t.get("total_duration_secs")),
        "trend_total_credits_used": _float(t.get("total_credits_used")),
        "trend_success_rate": _float(t.get("success_rate")),
        "trend_throughput": _float(t.get("throughput")),
        "all_projects": list(body.get("all_projects") or []),
    }
    project_rows = []
    for item in body.get("org_project_data") or []:
        pm, pt = _obj(item, "metrics"), _obj(item, "trends")
        project_rows.append(
            {
                **base,
                "project_name": item.get("project_name"),
                "total_runs": _int(pm.get("total_runs")),
                "total_duration_seconds": _int(pm.get("total_duration_secs")),
                "total_credits_used": _int(pm.get("total_credits_used")),
                "success_rate": _float(pm.get("success_rate")),
                "trend_total_runs": _float(pt.get("total_runs")),
                "trend_total_duration_seconds": _float(pt.get("total_duration_secs")),
                "trend_total_credits_used": _float(pt.get("total_credits_used")),
                "trend_success_rate": _float(pt.get("success_rate")),
            }
        )
    meta = {"extracted_at": at, "org_slug": org_slug, "reporting_window": reporting_window}
    return OrgSummary(
        Extract("org_summary", build_table("org_summary", [org_row]), **meta),
        Extract("org_project_summary", build_table("org_project_summary", project_rows), **meta),
    )


def _page_workflow_row(item: Mapping[str, Any]) -> dict[str, Any]:
    m, t = _obj(item, "metrics"), _obj(item, "trends")
    return {
        "workflow_name": item.get("workflow_name"),
        "total_runs": _int(m.get("total_runs")),
        "total_credits_used": _int(m.get("total_credits_used")),
        "success_rate": _float(m.get("success_rate")),
        "p95_duration_seconds": _float(m.get("p95_duration_secs")),
        "trend_total_runs": _float(t.get("total_runs")),
        "trend_total_credits_used": _float(t.get("total_credits_used")),
        "trend_success_rate": _float(t.get("success_rate")),
        "trend_p95_duration_seconds": _float(t.get("p95_duration_secs")),
    }


async def extract_project_summary(
    client: CircleCIClient,
    project_slug: str,
    reporting_window: str = "last-90-days",
    *,
    branches: Sequence[str] | None = None,
    workflow_names: Sequence[str] | None = None,
) -> ProjectSummary:
    """GET /insights/pages/{project-slug}/summary -> project, per-workflow and per-workflow-branch rows."""
    _check_window(reporting_window)
    at = utcnow()
    (body,) = await fetch_records(
        client,
        STREAMS["project_summary"],
        project_slug=project_slug,
        params={
            "reporting-window": reporting_window,
            "branches": list(branches or []),
            "workflow-names": list(workflow_names or []),
        },
        resource=_project(project_slug),
    )
    project_id, org_id = _str(body.get("project_id")), _str(body.get("org_id"))
    pd = _obj(body, "project_data")
    m, t = _obj(pd, "metrics"), _obj(pd, "trends")
    base = {"project_slug": project_slug, "reporting_window": reporting_window, "extracted_at": at}
    project_row = {
        **base,
        "project_id": project_id,
        "org_id": org_id,
        "total_runs": _int(m.get("total_runs")),
        "total_duration_seconds": _int(m.get("total_duration_secs")),
        "total_credits_used": _int(m.get("total_credits_used")),
        "success_rate": _float(m.get("success_rate")),
        "throughput_runs_per_day": _float(m.get("throughput")),
        "trend_total_runs": _float(t.get("total_runs")),
        "trend_total_duration_seconds": _float(t.get("total_duration_secs")),
        "trend_total_credits_used": _float(t.get("total_credits_used")),
        "trend_success_rate": _float(t.get("success_rate")),
        "trend_throughput": _float(t.get("throughput")),
        "all_branches": list(body.get("all_branches") or []),
        "all_workflows": list(body.get("all_workflows") or []),
    }
    wf_rows = [
        {**base, "project_id": project_id, **_page_workflow_row(item)}
        for item in body.get("project_workflow_data") or []
    ]
    br_rows = [
        {**base, "project_id": project_id, "branch": item.get("branch"), **_page_workflow_row(item)}
        for item in body.get("project_workflow_branch_data") or []
    ]
    meta = {"extracted_at": at, "project_slug": project_slug, "reporting_window": reporting_window}
    return ProjectSummary(
        Extract("project_summary", build_table("project_summary", [project_row]), **meta),
        Extract("project_workflow_summary", build_table("project_workflow_summary", wf_rows), **meta),
        Extract(
            "project_workflow_branch_summary",
            build_table("project_workflow_branch_summary", br_rows),
            **meta,
        ),
    )


# -- workflow / job aggregate metrics -------------------------------------------------------
async def extract_workflow_metrics(
    client: CircleCIClient,
    project_slug: str,
    *,
    scope: str = DEFAULT_BRANCH,
    reporting_window: str = "last-90-days",
) -> Extract:
    """GET /insights/{project-slug}/workflows (paginated): one row per workflow."""
    _check_window(reporting_window)
    at = utcnow()
    items = await fetch_records(
        client,
        STREAMS["workflow_metrics"],
        project_slug=project_slug,
        params={"reporting-window": reporting_window, **scope_params(scope)},
        resource=_project(project_slug),
    )
    rows = []
    for item in items:
        m = _obj(item, "metrics")
        rows.append(
            {
                "project_slug": project_slug,
                "project_id": _str(item.get("project_id")),
                "scope": scope,
                "reporting_window": reporting_window,
                "workflow_name": item.get("name"),
                "window_start": parse_timestamp(item.get("window_start")),
                "window_end": parse_timestamp(item.get("window_end")),
                "total_runs": _int(m.get("total_runs")),
                "successful_runs": _int(m.get("successful_runs")),
                "failed_runs": _int(m.get("failed_runs")),
                "mttr_seconds": _int(m.get("mttr")),
                "total_credits_used": _int(m.get("total_credits_used")),
                "total_recoveries": _int(m.get("total_recoveries")),
                "success_rate": _float(m.get("success_rate")),
                "throughput_runs_per_day": _float(m.get("throughput")),
                **_durations(_obj(m, "duration_metrics")),
                "extracted_at": at,
            }
        )
    return Extract(
        "workflow_metrics",
        build_table("workflow_metrics", rows),
        extracted_at=at,
        project_slug=project_slug,
        scope=scope,
        reporting_window=reporting_window,
    )


async def extract_workflow_job_metrics(
    client: CircleCIClient,
    project_slug: str,
    workflow_name: str,
    *,
    scope: str = DEFAULT_BRANCH,
    reporting_window: str = "last-90-days",
    job_name: str | None = None,
) -> Extract:
    """GET /insights/{project-slug}/workflows/{workflow-name}/jobs (paginated): one row per job."""
    _check_window(reporting_window)
    at = utcnow()
    items = await fetch_records(
        client,
        STREAMS["workflow_job_metrics"],
        project_slug=project_slug,
        workflow_name=workflow_name,
        params={"reporting-window": reporting_window, "job-name": job_name, **scope_params(scope)},
        resource=_workflow(project_slug, workflow_name),
    )
    rows = []
    for item in items:
        m = _obj(item, "metrics")
        rows.append(
            {
                "project_slug": project_slug,
                "scope": scope,
                "reporting_window": reporting_window,
                "workflow_name": workflow_name,
                "job_name": item.get("name"),
                "window_start": parse_timestamp(item.get("window_start")),
                "window_end": parse_timestamp(item.get("window_end")),
                "total_runs": _int(m.get("total_runs")),
                "successful_runs": _int(m.get("successful_runs")),
                "failed_runs": _int(m.get("failed_runs")),
                "total_credits_used": _int(m.get("total_credits_used")),
                "success_rate": _float(m.get("success_rate")),
                "throughput_runs_per_day": _float(m.get("throughput")),
                **_durations(_obj(m, "duration_metrics")),
                "extracted_at": at,
            }
        )
    return Extract(
        "workflow_job_metrics",
        build_table("workflow_job_metrics", rows),
        extracted_at=at,
        project_slug=project_slug,
        scope=scope,
        reporting_window=reporting_window,
        extra={"workflow_name": workflow_name},
    )


async def extract_workflow_summary(
    client: CircleCIClient,
    project_slug: str,
    workflow_name: str,
    *,
    scope: str = DEFAULT_BRANCH,
) -> Extract:
    """GET /insights/{project-slug}/workflows/{workflow-name}/summary: one row.

    ``extra["workflow_names"]`` lists every workflow of the project (handy for discovery).
    """
    at = utcnow()
    (body,) = await fetch_records(
        client,
        STREAMS["workflow_summary"],
        project_slug=project_slug,
        workflow_name=workflow_name,
        params=scope_params(scope),
        resource=_workflow(project_slug, workflow_name),
    )
    m, t = _obj(body, "metrics"), _obj(body, "trends")
    row = {
        "project_slug": project_slug,
        "scope": scope,
        "workflow_name": workflow_name,
        "window_start": parse_timestamp(m.get("window_start")),
        "window_end": parse_timestamp(m.get("window_end")),
        "total_runs": _int(m.get("total_runs")),
        "successful_runs": _int(m.get("successful_runs")),
        "failed_runs": _int(m.get("failed_runs")),
        "completed_runs": _int(m.get("completed_runs")),
        "mttr_seconds": _int(m.get("mttr")),
        "total_credits_used": _int(m.get("total_credits_used")),
        "success_rate": _float(m.get("success_rate")),
        "throughput_runs_per_day": _float(m.get("throughput")),
        **_durations(_obj(m, "duration_metrics")),
        **{
            f"trend_{key}": _float(t.get(key))
            for key in ("total_runs", "failed_runs", "success_rate", "total_credits_used", "mttr", "throughput")
        },
        "trend_p95_duration_seconds": _float(t.get("p95_duration_secs")),
        "trend_median_duration_seconds": _float(t.get("median_duration_secs")),
        "extracted_at": at,
    }
    return Extract(
        "workflow_summary",
        build_table("workflow_summary", [row]),
        extracted_at=at,
        project_slug=project_slug,
        scope=scope,
        extra={"workflow_name": workflow_name, "workflow_names": list(body.get("workflow_names") or [])},
    )


# -- workflow runs (incremental) ------------------------------------------------------------
def run_windows(
    start: datetime, end: datetime, max_window: timedelta = MAX_RUNS_WINDOW
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive windows no longer than ``max_window``."""
    windows = []
    cursor = start
    while cursor < end:
        stop = min(cursor + max_window, end)
        windows.append((cursor, stop))
        cursor = stop
    return windows


def _runs_start(
    watermark: datetime | None, overlap: timedelta, now: datetime, lookback: timedelta
) -> datetime:
    if watermark is None:
        return now - lookback
    watermark = parse_timestamp(watermark)
    assert watermark is not None
    return min(watermark - overlap, now)


async def _workflow_runs_one(
    client: CircleCIClient,
    project_slug: str,
    workflow_name: str,
    scope: str,
    windows: list[tuple[datetime, datetime]],
    at: datetime,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start, end in windows:
        items = await fetch_records(
            client,
            STREAMS["workflow_runs"],
            project_slug=project_slug,
            workflow_name=workflow_name,
            params={**scope_params(scope), "start-date": start, "end-date": end},
            resource=_workflow(project_slug, workflow_name),
        )
        for item in items:
            rows.append(
                {
                    "project_slug": project_slug,
                    "workflow_name": workflow_name,
                    "workflow_id": _str(item.get("id")),
                    "branch": item.get("branch"),
                    "status": item.get("status"),
                    "is_approval": item.get("is_approval"),
                    "created_at": parse_timestamp(item.get("created_at")),
                    "stopped_at": parse_timestamp(item.get("stopped_at")),
                    "duration_seconds": _int(item.get("duration")),
                    "credits_used": _int(item.get("credits_used")),
                    "scope": scope,
                    "extracted_at": at,
                }
            )
    return rows


async def extract_workflow_runs(
    client: CircleCIClient,
    project_slug: str,
    workflow_names: str | Sequence[str],
    *,
    scope: str = ALL_BRANCHES,
    watermark: datetime | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
    lookback: timedelta = INSIGHTS_RETENTION,
    max_window: timedelta = MAX_RUNS_WINDOW,
) -> Extract:
    """GET /insights/{project-slug}/workflows/{workflow-name} (paginated), incrementally.

    Fetches runs created in ``[watermark - overlap, now)`` (``[now - lookback, now)``
    without a watermark), in windows of at most ``max_window`` (the API allows
    ``end-date`` at most 90 days after ``start-date``). Several workflows are fetched
    concurrently. Rows are de-duplicated by workflow id; ``Extract.watermark`` is the
    newest ``created_at`` seen (or the old watermark if nothing new), for the next run.
    """
    names = [workflow_names] if isinstance(workflow_names, str) else list(workflow_names)
    at = utcnow()
    now = parse_timestamp(now) if now is not None else at
    assert now is not None
    start = _runs_start(watermark, overlap, now, lookback)
    windows = run_windows(start, now, max_window)
    per_workflow = await asyncio.gather(
        *(_workflow_runs_one(client, project_slug, name, scope, windows, at) for name in names)
    )
    seen: set[str] = set()
    rows = []
    for workflow_rows in per_workflow:
        for row in workflow_rows:
            if row["workflow_id"] in seen:
                continue
            seen.add(row["workflow_id"])
            rows.append(row)
    newest = max((r["created_at"] for r in rows if r["created_at"]), default=None)
    old = parse_timestamp(watermark) if watermark is not None else None
    new_watermark = max(filter(None, [newest, old]), default=None)
    return Extract(
        "workflow_runs",
        build_table("workflow_runs", rows),
        extracted_at=at,
        project_slug=project_slug,
        scope=scope,
        start=start,
        end=now,
        watermark=new_watermark,
        extra={"workflow_names": ",".join(names), "windows": len(windows)},
    )


# -- job time series -------------------------------------------------------------------------
async def extract_job_timeseries(
    client: CircleCIClient,
    project_slug: str,
    workflow_name: str,
    *,
    branch: str | None = None,
    granularity: str = "daily",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Extract:
    """GET /insights/time-series/{project-slug}/workflows/{workflow-name}/jobs.

    ``branch=None`` means the default branch (the endpoint cannot do all branches).
    ``start``/``end`` default to the API's own defaults (not sent).
    """
    if granularity not in ("daily", "hourly"):
        raise ValueError("granularity must be 'daily' or 'hourly'")
    at = utcnow()
    items = await fetch_records(
        client,
        STREAMS["job_timeseries"],
        project_slug=project_slug,
        workflow_name=workflow_name,
        params={"granularity": granularity, "branch": branch, "start-date": start, "end-date": end},
        resource=_workflow(project_slug, workflow_name),
    )
    rows = []
    for item in items:
        m = _obj(item, "metrics")
        dm = _obj(m, "duration_metrics")
        rows.append(
            {
                "project_slug": project_slug,
                "workflow_name": workflow_name,
                "branch": branch,
                "granularity": granularity,
                "job_name": item.get("name"),
                "bucket_start": parse_timestamp(item.get("timestamp")),
                "min_started_at": parse_timestamp(item.get("min_started_at")),
                "max_ended_at": parse_timestamp(item.get("max_ended_at")),
                "total_runs": _int(m.get("total_runs")),
                "successful_runs": _int(m.get("successful_runs")),
                "failed_runs": _int(m.get("failed_runs")),
                "median_credits_used": _int(m.get("median_credits_used")),
                "total_credits_used": _int(m.get("total_credits_used")),
                "throughput_runs_per_day": _float(m.get("throughput")),
                "duration_min_seconds": _int(dm.get("min")),
                "duration_median_seconds": _int(dm.get("median")),
                "duration_max_seconds": _int(dm.get("max")),
                "duration_p95_seconds": _int(dm.get("p95")),
                "duration_total_seconds": _int(dm.get("total")),
                "extracted_at": at,
            }
        )
    newest = max((r["bucket_start"] for r in rows), default=None)
    return Extract(
        "job_timeseries",
        build_table("job_timeseries", rows),
        extracted_at=at,
        project_slug=project_slug,
        scope=branch or DEFAULT_BRANCH,
        start=parse_timestamp(start),
        end=parse_timestamp(end),
        watermark=newest,
        extra={"workflow_name": workflow_name, "granularity": granularity},
    )


# -- branches, flaky tests, test metrics -------------------------------------------------------
async def extract_branches(
    client: CircleCIClient, project_slug: str, *, workflow_name: str | None = None
) -> Extract:
    """GET /insights/{project-slug}/branches: one row per branch."""
    at = utcnow()
    (body,) = await fetch_records(
        client,
        STREAMS["branches"],
        project_slug=project_slug,
        params={"workflow-name": workflow_name},
        resource=_project(project_slug),
    )
    rows = [
        {
            "project_slug": project_slug,
            "project_id": _str(body.get("project_id")),
            "org_id": _str(body.get("org_id")),
            "workflow_name": workflow_name,
            "branch": branch,
            "extracted_at": at,
        }
        for branch in body.get("branches") or []
    ]
    return Extract("branches", build_table("branches", rows), extracted_at=at, project_slug=project_slug)


def _snake_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).replace("-", "_"): value for key, value in record.items()}


def _blank_to_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


async def extract_flaky_tests(client: CircleCIClient, project_slug: str) -> Extract:
    """GET /insights/{project-slug}/flaky-tests; accepts snake_case (live) and kebab-case (spec) keys."""
    at = utcnow()
    (raw,) = await fetch_records(
        client, STREAMS["flaky_tests"], project_slug=project_slug, resource=_project(project_slug)
    )
    body = _snake_keys(raw)
    rows = []
    for raw_item in body.get("flaky_tests") or []:
        item = _snake_keys(raw_item)
        rows.append(
            {
                "project_slug": project_slug,
                "test_name": item.get("test_name"),
                "classname": _blank_to_none(item.get("classname")),
                "file": _blank_to_none(item.get("file")),
                "source": _blank_to_none(item.get("source")),
                "job_name": item.get("job_name"),
                "job_number": _int(item.get("job_number")),
                "workflow_name": item.get("workflow_name"),
                "workflow_id": _str(item.get("workflow_id")),
                "workflow_created_at": parse_timestamp(item.get("workflow_created_at")),
                "pipeline_number": _int(item.get("pipeline_number")),
                "times_flaked": _int(item.get("times_flaked")),
                "time_wasted_seconds": _int(item.get("time_wasted")),
                "extracted_at": at,
            }
        )
    total = body.get("total_flaky_tests")
    return Extract(
        "flaky_tests",
        build_table("flaky_tests", rows),
        extracted_at=at,
        project_slug=project_slug,
        extra={"total_flaky_tests": total if total is not None else len(rows)},
    )


async def extract_test_metrics(
    client: CircleCIClient,
    project_slug: str,
    workflow_name: str,
    *,
    scope: str = DEFAULT_BRANCH,
) -> TestMetrics:
    """GET /insights/{project-slug}/workflows/{workflow-name}/test-metrics (last 10 runs)."""
    at = utcnow()
    (body,) = await fetch_records(
        client,
        STREAMS["test_metrics"],
        project_slug=project_slug,
        workflow_name=workflow_name,
        params=scope_params(scope),
        resource=_workflow(project_slug, workflow_name),
    )
    base = {"project_slug": project_slug, "workflow_name": workflow_name, "scope": scope, "extracted_at": at}
    test_rows = []
    for category, key in (("most_failed", "most_failed_tests"), ("slowest", "slowest_tests")):
        for item in body.get(key) or []:
            test_rows.append(
                {
                    **base,
                    "category": category,
                    "test_name": item.get("test_name"),
                    "classname": _blank_to_none(item.get("classname")),
                    "file": _blank_to_none(item.get("file")),
                    "source": _blank_to_none(item.get("source")),
                    "job_name": item.get("job_name"),
                    "failed_runs": _int(item.get("failed_runs")),
                    "total_runs": _int(item.get("total_runs")),
                    "p95_duration_seconds": _float(item.get("p95_duration")),
                    "flaky": item.get("flaky"),
                }
            )
    run_rows = []
    for item in body.get("test_runs") or []:
        counts = _obj(item, "test_counts")
        run_rows.append(
            {
                **base,
                "pipeline_number": _int(item.get("pipeline_number")),
                "workflow_id": _str(item.get("workflow_id")),
                "success_rate": _float(item.get("success_rate")),
                "tests_error": _int(counts.get("error")),
                "tests_failure": _int(counts.get("failure")),
                "tests_skipped": _int(counts.get("skipped")),
                "tests_success": _int(counts.get("success")),
                "tests_total": _int(counts.get("total")),
            }
        )
    extra = {
        "workflow_name": workflow_name,
        "average_test_count": body.get("average_test_count"),
        "total_test_runs": body.get("total_test_runs"),
        "most_failed_tests_extra": body.get("most_failed_tests_extra"),
        "slowest_tests_extra": body.get("slowest_tests_extra"),
    }
    meta = {"extracted_at": at, "project_slug": project_slug, "scope": scope, "extra": extra}
    return TestMetrics(
        Extract("test_metrics", build_table("test_metrics", test_rows), **meta),
        Extract("test_metrics_runs", build_table("test_metrics_runs", run_rows), **meta),
    )
