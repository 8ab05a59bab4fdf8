"""The stream catalogue: every stream the pipeline lands, each declared once (``connectors.streams``).

Adding a column is one ``Field`` line here: the Arrow schema, the lake table
(``warehouse.tables``) and the dbt source (``sql/models/staging/__sources.yml``, regenerated
by ``python -m circleci_analytics.warehouse.dbt_sources``) follow; a staging model still has
to select it.

Units are in column names (``*_seconds``, ``credits_used``, ``throughput_runs_per_day``);
timestamps are UTC; ``trend_*`` are CircleCI's relative changes versus the previous window.

What is not landed, and why: the org and project summaries repeat workflow metrics (the org
summary is still read by project discovery's cross-check, ``connectors.projects``); Insights' branch
list and the per-run test counts of test metrics feed no model (branch activity will come from
the usage export); jobs of recent workflows (core API) are what the usage export already lands.
"""

from __future__ import annotations

from typing import TypedDict

import pyarrow as pa

from circleci_analytics.connectors.streams import (
    ALL_BRANCHES,
    DEFAULT_BRANCH,
    TIMESTAMP,
    Cursor,
    Endpoint,
    Field,
    Layout,
    Stream,
    blank_to_none,
)
from circleci_analytics.connectors.usage_export.schema import QUARANTINE_SCHEMA, USAGE_JOB_RUNS_SCHEMA

__all__ = ["CATALOGUE", "stream"]

S, I, F, B, T = pa.string(), pa.int64(), pa.float64(), pa.bool_(), TIMESTAMP  # noqa: E741 - one-letter type aliases keep the field tables readable

#: The Insights metrics of the last 90 days (the longest reporting window).
LAST_90_DAYS = {"reporting-window": "last-90-days"}
SNAPSHOT = Layout("snapshot", (("snapshot_date", "date", "snapshot_date"),))


def by_date(column: str) -> Layout:
    """Merged rows, partitioned by the UTC date of `column`."""
    return Layout("merge", (("date", "date", column),))


def context(*columns: str, type: pa.DataType = S) -> list[Field]:
    """Required columns taken from the request context (path values, scope)."""
    return [Field(c, f"@{c}", type, required=True) for c in columns]


def durations(path: str, stats: tuple[str, ...] = ("min", "mean", "median", "p95", "max")) -> list[Field]:
    """CircleCI's duration block (seconds): ``duration_<stat>_seconds`` per statistic."""
    out = [Field(f"duration_{s}_seconds", f"{path}.{s}", I) for s in stats]
    if "mean" in stats:
        out.append(Field("duration_stddev_seconds", f"{path}.standard_deviation", F))
    return out


def named_test() -> list[Field]:
    """A test as Insights names it (flaky tests, test metrics): blank ``file``, ``classname``,
    ``source`` are null."""
    return [
        Field("test_name", "test_name", S, required=True),
        *(Field(c, c, S, parse=blank_to_none) for c in ("classname", "file", "source")),
        Field("job_name", "job_name", S),
    ]


def run_counts(path: str) -> list[Field]:
    return [Field(c, f"{path}.{c}", I) for c in ("total_runs", "successful_runs", "failed_runs")]


_INS = "/insights/{project_slug}"
_WF = _INS + "/workflows/{workflow_name}"


class _Parent(TypedDict):
    """A child stream's parent and the parent columns it reads (``Stream`` keywords)."""

    parent: str
    parent_keys: tuple[str, ...]


_PER_WORKFLOW: _Parent = {"parent": "workflow_metrics", "parent_keys": ("project_slug", "workflow_name")}
_PER_PROJECT: _Parent = {"parent": "projects", "parent_keys": ("project_slug",)}

_STREAMS = [
    Stream(
        "projects",
        "Project metadata (slug, ids, default branch), one row per configured project.",
        Layout("merge"),
        handler="connectors.projects",  # the slug as configured is kept; a body that is no project is refused
        endpoint=Endpoint("/project/{project_slug}"),
        parent_keys=("project_slug",),
        primary_key=("project_id",),
        fields=(
            Field("project_id", "id", S, required=True),
            Field("project_slug", "@project_slug", S, required=True),
            Field("project_name", "name", S),
            Field("org_id", "organization_id", S),
            Field("org_name", "organization_name", S),
            Field("org_slug", "organization_slug", S),
            Field("vcs_provider", "vcs_info.provider", S),
            Field("vcs_url", "vcs_info.vcs_url", S),
            Field("default_branch", "vcs_info.default_branch", S),
        ),
    ),
    Stream(
        "workflow_metrics",
        "Insights workflow metrics of the last 90 days, one row per workflow x scope x snapshot day; "
        "the parent of the per-workflow streams (its workflow names).",
        SNAPSHOT,
        **_PER_PROJECT,
        endpoint=Endpoint(_INS + "/workflows", LAST_90_DAYS, paginated=True),
        scopes=(ALL_BRANCHES, DEFAULT_BRANCH),
        primary_key=("project_slug", "scope", "reporting_window", "workflow_name"),
        landed_only="fetched as the parent of the per-workflow streams (their workflow names); landed so "
        "CircleCI's own 90-day workflow figures can be queried beside ours (no mart needs them)",
        fields=(
            *context("project_slug"),
            Field("project_id", "project_id", S),
            *context("scope", "reporting_window"),
            Field("workflow_name", "name", S, required=True),
            Field("window_start", "window_start", T),
            Field("window_end", "window_end", T),
            *run_counts("metrics"),
            Field("mttr_seconds", "metrics.mttr", I),
            Field("total_credits_used", "metrics.total_credits_used", I),
            Field("total_recoveries", "metrics.total_recoveries", I),
            Field("success_rate", "metrics.success_rate", F),
            Field("throughput_runs_per_day", "metrics.throughput", F),
            *durations("metrics.duration_metrics"),
        ),
    ),
    Stream(
        "workflow_job_metrics",
        "Insights job metrics of the last 90 days (default branch), one row per workflow x job x snapshot day.",
        SNAPSHOT,
        **_PER_WORKFLOW,
        endpoint=Endpoint(_WF + "/jobs", LAST_90_DAYS, paginated=True),
        scopes=(DEFAULT_BRANCH,),
        refresh="slow snapshot",
        primary_key=("project_slug", "scope", "reporting_window", "workflow_name", "job_name"),
        fields=(
            *context("project_slug", "scope", "reporting_window", "workflow_name"),
            Field("job_name", "name", S, required=True),
            Field("window_start", "window_start", T),
            Field("window_end", "window_end", T),
            *run_counts("metrics"),
            Field("total_credits_used", "metrics.total_credits_used", I),
            Field("success_rate", "metrics.success_rate", F),
            Field("throughput_runs_per_day", "metrics.throughput", F),
            *durations("metrics.duration_metrics"),
        ),
    ),
    Stream(
        "workflow_summary",
        "Insights workflow summary (with MTTR and trends), one row per workflow x scope x snapshot day.",
        SNAPSHOT,
        **_PER_WORKFLOW,
        endpoint=Endpoint(_WF + "/summary"),
        scopes=(DEFAULT_BRANCH, ALL_BRANCHES),
        refresh="slow snapshot",
        primary_key=("project_slug", "scope", "workflow_name"),
        fields=(
            *context("project_slug", "scope", "workflow_name"),
            Field("window_start", "metrics.window_start", T),
            Field("window_end", "metrics.window_end", T),
            *run_counts("metrics"),
            Field("completed_runs", "metrics.completed_runs", I),
            Field("mttr_seconds", "metrics.mttr", I),
            Field("total_credits_used", "metrics.total_credits_used", I),
            Field("success_rate", "metrics.success_rate", F),
            Field("throughput_runs_per_day", "metrics.throughput", F),
            *durations("metrics.duration_metrics"),
            Field("trend_total_runs", "trends.total_runs", F),
            Field("trend_failed_runs", "trends.failed_runs", F),
            Field("trend_success_rate", "trends.success_rate", F),
            Field("trend_p95_duration_seconds", "trends.p95_duration_secs", F),
            Field("trend_median_duration_seconds", "trends.median_duration_secs", F),
            Field("trend_total_credits_used", "trends.total_credits_used", F),
            Field("trend_mttr", "trends.mttr", F),
            Field("trend_throughput", "trends.throughput", F),
        ),
    ),
    Stream(
        "workflow_runs",
        "Insights workflow runs (all branches), one row per workflow run; incremental by creation time.",
        by_date("created_at"),
        **_PER_WORKFLOW,
        endpoint=Endpoint(_WF, paginated=True),
        scopes=(ALL_BRANCHES,),
        cursor=Cursor("created_at"),
        primary_key=("workflow_id",),
        fields=(
            *context("project_slug", "workflow_name"),
            Field("workflow_id", "id", S, required=True),
            Field("branch", "branch", S),
            Field("status", "status", S),
            Field("is_approval", "is_approval", B),
            Field("created_at", "created_at", T, required=True),
            Field("stopped_at", "stopped_at", T),
            Field("duration_seconds", "duration", I),
            Field("credits_used", "credits_used", I),
            *context("scope"),
        ),
    ),
    Stream(
        "job_timeseries",
        "Insights daily job time series (default branch), one row per workflow x job x day; incremental by day.",
        by_date("bucket_start"),
        **_PER_WORKFLOW,
        endpoint=Endpoint(
            "/insights/time-series/{project_slug}/workflows/{workflow_name}/jobs",
            {"granularity": "daily"},
            paginated=True,
        ),  # fmt: skip
        cursor=Cursor("bucket_start"),
        refresh="slow snapshot",
        primary_key=("project_slug", "workflow_name", "branch", "granularity", "job_name", "bucket_start"),
        fields=(
            *context("project_slug", "workflow_name"),
            Field("branch", "@branch", S),  # null = the default branch (the endpoint has no all-branches)
            *context("granularity"),
            Field("job_name", "name", S, required=True),
            Field("bucket_start", "timestamp", T, required=True),
            Field("min_started_at", "min_started_at", T),
            Field("max_ended_at", "max_ended_at", T),
            *run_counts("metrics"),
            Field("median_credits_used", "metrics.median_credits_used", I),
            Field("total_credits_used", "metrics.total_credits_used", I),
            Field("throughput_runs_per_day", "metrics.throughput", F),
            *durations("metrics.duration_metrics", ("min", "median", "max", "p95", "total")),
        ),
    ),
    Stream(
        "flaky_tests",
        "CircleCI's flaky-test list, one row per test x snapshot day.",
        SNAPSHOT,
        **_PER_PROJECT,
        endpoint=Endpoint(_INS + "/flaky-tests", records="flaky_tests", snake_keys=True),
        primary_key=("project_slug", "test_name", "classname", "file", "job_name"),
        fields=(
            *context("project_slug"),
            *named_test(),
            Field("job_number", "job_number", I),
            Field("workflow_name", "workflow_name", S),
            Field("workflow_id", "workflow_id", S),
            Field("workflow_created_at", "workflow_created_at", T),
            Field("pipeline_number", "pipeline_number", I),
            Field("times_flaked", "times_flaked", I),
            Field("time_wasted_seconds", "time_wasted", I),
        ),
    ),
    Stream(
        "test_metrics",
        "Insights test metrics of a workflow's recent runs (default branch): its most failed and "
        "slowest tests, one row per category x test x snapshot day.",
        SNAPSHOT,
        **_PER_WORKFLOW,
        endpoint=Endpoint(
            _WF + "/test-metrics", records={"most_failed": "most_failed_tests", "slowest": "slowest_tests"}
        ),  # fmt: skip
        scopes=(DEFAULT_BRANCH,),
        refresh="slow snapshot",
        primary_key=(
            "project_slug",
            "workflow_name",
            "scope",
            "category",
            "job_name",
            "test_name",
            "classname",
            "file",
        ),
        fields=(
            *context("project_slug", "workflow_name", "scope"),
            Field("category", "@record_set", S, required=True),  # "most_failed" | "slowest"
            *named_test(),
            Field("failed_runs", "failed_runs", I),
            Field("total_runs", "total_runs", I),
            Field("p95_duration_seconds", "p95_duration", F),
            Field("flaky", "flaky", B),
        ),
    ),
    Stream(
        "job_tests",
        "One row per test result of a job run. Its jobs are the lake's job runs (usage export) "
        "whose tests have not landed; the probing rules are in the handler.",
        by_date("job_started_at"),
        handler="connectors.tests_metadata",
        endpoint=Endpoint("/project/{project_slug}/{job_number}/tests", paginated=True),
        parent="usage_job_runs",
        parent_keys=("project_slug", "job_number"),
        primary_key=("project_slug", "job_number", "classname", "name", "file"),
        fields=(
            *context("project_slug"),
            *context("job_number", type=I),
            Field("job_name", "@job_name", S),
            Field("pipeline_id", "@pipeline_id", S),
            Field("workflow_id", "@workflow_id", S),
            Field("job_started_at", "@job_started_at", T),
            Field("classname", "classname", S),
            Field("name", "name", S),
            Field("file", "file", S),
            Field("source", "source", S),
            Field("result", "result", S),
            Field("run_time_seconds", "run_time", F),
            Field("message", "message", S),
        ),
    ),
    Stream(
        "usage_job_runs",
        "Usage export: one row per job run (billing-grade credits).",
        Layout("merge", (("org_id", "value", "organization_id"), ("date", "date", "job_run_started_at"))),
        handler="connectors.usage_export",  # create, poll, download and merge CSV parts; typed in its schema module
        primary_key=("job_id",),
        arrow_schema=USAGE_JOB_RUNS_SCHEMA,
    ),
    Stream(
        "usage_quarantine",
        "Usage-export rows that could not be parsed, verbatim with the reason.",
        by_date("export_window_start"),
        handler="connectors.usage_export",
        primary_key=("export_window_start", "part", "line_number"),
        arrow_schema=QUARANTINE_SCHEMA,
        landed_only="kept for a person to look at (the run summary points to it), not for a model",
    ),
]

#: The catalogue: stream name -> its declaration.
CATALOGUE: dict[str, Stream] = {s.name: s for s in _STREAMS}


def stream(name: str) -> Stream:
    """The declaration of stream `name` (``KeyError`` listing the known ones otherwise)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown stream {name!r}; the catalogue has: {', '.join(CATALOGUE)}") from None
