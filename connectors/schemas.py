"""Lake-facing Arrow schemas of every stream the connectors extract.

Conventions: snake_case columns; units in names (``*_seconds``, ``credits_used``,
``throughput_runs_per_day``); timestamps are ``timestamp("us", tz="UTC")``; every
table carries ``extracted_at``. Trend columns (``trend_*``) are CircleCI's relative
changes versus the previous window (floats, unitless).

Grain of each table (its primary key) is in ``connectors.streams.STREAMS``.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "BRANCHES",
    "DURATION_FIELDS",
    "FLAKY_TESTS",
    "JOB_TESTS",
    "JOB_TIMESERIES",
    "ORG_PROJECT_SUMMARY",
    "ORG_SUMMARY",
    "PROJECTS",
    "PROJECT_SUMMARY",
    "PROJECT_WORKFLOW_BRANCH_SUMMARY",
    "PROJECT_WORKFLOW_SUMMARY",
    "SCHEMAS",
    "TEST_METRICS",
    "TEST_METRICS_RUNS",
    "TIMESTAMP",
    "WORKFLOW_JOBS",
    "WORKFLOW_JOB_METRICS",
    "WORKFLOW_METRICS",
    "WORKFLOW_RUNS",
    "WORKFLOW_SUMMARY",
]

TIMESTAMP = pa.timestamp("us", tz="UTC")
_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


EXTRACTED_AT = _f("extracted_at", TIMESTAMP, False)

# CircleCI's duration block ``DM`` (seconds): min, mean, median, p95, max, standard_deviation.
DURATION_FIELDS = [
    _f("duration_min_seconds", _I),
    _f("duration_mean_seconds", _I),
    _f("duration_median_seconds", _I),
    _f("duration_p95_seconds", _I),
    _f("duration_max_seconds", _I),
    _f("duration_stddev_seconds", _F),
]

ORG_SUMMARY = pa.schema(
    [
        _f("org_slug", _S, False),
        _f("reporting_window", _S, False),
        _f("total_runs", _I),
        _f("total_duration_seconds", _I),
        _f("total_credits_used", _I),
        _f("success_rate", _F),
        _f("throughput_runs_per_day", _F),
        _f("trend_total_runs", _F),
        _f("trend_total_duration_seconds", _F),
        _f("trend_total_credits_used", _F),
        _f("trend_success_rate", _F),
        _f("trend_throughput", _F),
        _f("all_projects", pa.list_(_S)),
        EXTRACTED_AT,
    ]
)

ORG_PROJECT_SUMMARY = pa.schema(
    [
        _f("org_slug", _S, False),
        _f("reporting_window", _S, False),
        _f("project_name", _S, False),
        _f("total_runs", _I),
        _f("total_duration_seconds", _I),
        _f("total_credits_used", _I),
        _f("success_rate", _F),
        _f("trend_total_runs", _F),
        _f("trend_total_duration_seconds", _F),
        _f("trend_total_credits_used", _F),
        _f("trend_success_rate", _F),
        EXTRACTED_AT,
    ]
)

PROJECT_SUMMARY = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("project_id", _S),
        _f("org_id", _S),
        _f("reporting_window", _S, False),
        _f("total_runs", _I),
        _f("total_duration_seconds", _I),
        _f("total_credits_used", _I),
        _f("success_rate", _F),
        _f("throughput_runs_per_day", _F),
        _f("trend_total_runs", _F),
        _f("trend_total_duration_seconds", _F),
        _f("trend_total_credits_used", _F),
        _f("trend_success_rate", _F),
        _f("trend_throughput", _F),
        _f("all_branches", pa.list_(_S)),
        _f("all_workflows", pa.list_(_S)),
        EXTRACTED_AT,
    ]
)

_PAGE_WORKFLOW_FIELDS = [
    _f("workflow_name", _S, False),
    _f("total_runs", _I),
    _f("total_credits_used", _I),
    _f("success_rate", _F),
    _f("p95_duration_seconds", _F),
    _f("trend_total_runs", _F),
    _f("trend_total_credits_used", _F),
    _f("trend_success_rate", _F),
    _f("trend_p95_duration_seconds", _F),
]

PROJECT_WORKFLOW_SUMMARY = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("project_id", _S),
        _f("reporting_window", _S, False),
        *_PAGE_WORKFLOW_FIELDS,
        EXTRACTED_AT,
    ]
)

PROJECT_WORKFLOW_BRANCH_SUMMARY = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("project_id", _S),
        _f("reporting_window", _S, False),
        _f("branch", _S, False),
        *_PAGE_WORKFLOW_FIELDS,
        EXTRACTED_AT,
    ]
)

WORKFLOW_METRICS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("project_id", _S),
        _f("scope", _S, False),
        _f("reporting_window", _S, False),
        _f("workflow_name", _S, False),
        _f("window_start", TIMESTAMP),
        _f("window_end", TIMESTAMP),
        _f("total_runs", _I),
        _f("successful_runs", _I),
        _f("failed_runs", _I),
        _f("mttr_seconds", _I),
        _f("total_credits_used", _I),
        _f("total_recoveries", _I),
        _f("success_rate", _F),
        _f("throughput_runs_per_day", _F),
        *DURATION_FIELDS,
        EXTRACTED_AT,
    ]
)

WORKFLOW_JOB_METRICS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("scope", _S, False),
        _f("reporting_window", _S, False),
        _f("workflow_name", _S, False),
        _f("job_name", _S, False),
        _f("window_start", TIMESTAMP),
        _f("window_end", TIMESTAMP),
        _f("total_runs", _I),
        _f("successful_runs", _I),
        _f("failed_runs", _I),
        _f("total_credits_used", _I),
        _f("success_rate", _F),
        _f("throughput_runs_per_day", _F),
        *DURATION_FIELDS,
        EXTRACTED_AT,
    ]
)

WORKFLOW_SUMMARY = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("scope", _S, False),
        _f("workflow_name", _S, False),
        _f("window_start", TIMESTAMP),
        _f("window_end", TIMESTAMP),
        _f("total_runs", _I),
        _f("successful_runs", _I),
        _f("failed_runs", _I),
        _f("completed_runs", _I),
        _f("mttr_seconds", _I),
        _f("total_credits_used", _I),
        _f("success_rate", _F),
        _f("throughput_runs_per_day", _F),
        *DURATION_FIELDS,
        _f("trend_total_runs", _F),
        _f("trend_failed_runs", _F),
        _f("trend_success_rate", _F),
        _f("trend_p95_duration_seconds", _F),
        _f("trend_median_duration_seconds", _F),
        _f("trend_total_credits_used", _F),
        _f("trend_mttr", _F),
        _f("trend_throughput", _F),
        EXTRACTED_AT,
    ]
)

WORKFLOW_RUNS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("workflow_name", _S, False),
        _f("workflow_id", _S, False),
        _f("branch", _S),
        _f("status", _S),
        _f("is_approval", _B),
        _f("created_at", TIMESTAMP, False),
        _f("stopped_at", TIMESTAMP),
        _f("duration_seconds", _I),
        _f("credits_used", _I),
        _f("scope", _S, False),
        EXTRACTED_AT,
    ]
)

JOB_TIMESERIES = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("workflow_name", _S, False),
        _f("branch", _S),  # null = the default branch (the endpoint has no all-branches)
        _f("granularity", _S, False),
        _f("job_name", _S, False),
        _f("bucket_start", TIMESTAMP, False),
        _f("min_started_at", TIMESTAMP),
        _f("max_ended_at", TIMESTAMP),
        _f("total_runs", _I),
        _f("successful_runs", _I),
        _f("failed_runs", _I),
        _f("median_credits_used", _I),
        _f("total_credits_used", _I),
        _f("throughput_runs_per_day", _F),
        _f("duration_min_seconds", _I),
        _f("duration_median_seconds", _I),
        _f("duration_max_seconds", _I),
        _f("duration_p95_seconds", _I),
        _f("duration_total_seconds", _I),
        EXTRACTED_AT,
    ]
)

BRANCHES = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("project_id", _S),
        _f("org_id", _S),
        _f("workflow_name", _S),  # null = all workflows
        _f("branch", _S, False),
        EXTRACTED_AT,
    ]
)

FLAKY_TESTS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("test_name", _S, False),
        _f("classname", _S),
        _f("file", _S),
        _f("source", _S),
        _f("job_name", _S),
        _f("job_number", _I),
        _f("workflow_name", _S),
        _f("workflow_id", _S),
        _f("workflow_created_at", TIMESTAMP),
        _f("pipeline_number", _I),
        _f("times_flaked", _I),
        _f("time_wasted_seconds", _I),
        EXTRACTED_AT,
    ]
)

TEST_METRICS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("workflow_name", _S, False),
        _f("scope", _S, False),
        _f("category", _S, False),  # "most_failed" | "slowest"
        _f("test_name", _S, False),
        _f("classname", _S),
        _f("file", _S),
        _f("source", _S),
        _f("job_name", _S),
        _f("failed_runs", _I),
        _f("total_runs", _I),
        _f("p95_duration_seconds", _F),
        _f("flaky", _B),
        EXTRACTED_AT,
    ]
)

TEST_METRICS_RUNS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("workflow_name", _S, False),
        _f("scope", _S, False),
        _f("pipeline_number", _I),
        _f("workflow_id", _S),
        _f("success_rate", _F),
        _f("tests_error", _I),
        _f("tests_failure", _I),
        _f("tests_skipped", _I),
        _f("tests_success", _I),
        _f("tests_total", _I),
        EXTRACTED_AT,
    ]
)

PROJECTS = pa.schema(
    [
        _f("project_id", _S, False),
        _f("project_slug", _S, False),
        _f("project_name", _S),
        _f("org_id", _S),
        _f("org_name", _S),
        _f("org_slug", _S),
        _f("vcs_provider", _S),
        _f("vcs_url", _S),
        _f("default_branch", _S),
        EXTRACTED_AT,
    ]
)

WORKFLOW_JOBS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("pipeline_id", _S, False),
        _f("pipeline_number", _I),
        _f("pipeline_created_at", TIMESTAMP),
        _f("branch", _S),
        _f("workflow_id", _S, False),
        _f("workflow_name", _S),
        _f("workflow_status", _S),
        _f("workflow_created_at", TIMESTAMP),
        _f("job_id", _S, False),
        _f("job_number", _I),
        _f("job_name", _S),
        _f("job_type", _S),
        _f("job_status", _S),
        _f("job_started_at", TIMESTAMP),
        _f("job_stopped_at", TIMESTAMP),
        EXTRACTED_AT,
    ]
)

JOB_TESTS = pa.schema(
    [
        _f("project_slug", _S, False),
        _f("job_number", _I, False),
        _f("job_name", _S),
        _f("pipeline_id", _S),
        _f("workflow_id", _S),
        _f("job_started_at", TIMESTAMP),
        _f("classname", _S),
        _f("name", _S),
        _f("file", _S),
        _f("source", _S),
        _f("result", _S),
        _f("run_time_seconds", _F),
        _f("message", _S),
        EXTRACTED_AT,
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "org_summary": ORG_SUMMARY,
    "org_project_summary": ORG_PROJECT_SUMMARY,
    "project_summary": PROJECT_SUMMARY,
    "project_workflow_summary": PROJECT_WORKFLOW_SUMMARY,
    "project_workflow_branch_summary": PROJECT_WORKFLOW_BRANCH_SUMMARY,
    "workflow_metrics": WORKFLOW_METRICS,
    "workflow_job_metrics": WORKFLOW_JOB_METRICS,
    "workflow_summary": WORKFLOW_SUMMARY,
    "workflow_runs": WORKFLOW_RUNS,
    "job_timeseries": JOB_TIMESERIES,
    "branches": BRANCHES,
    "flaky_tests": FLAKY_TESTS,
    "test_metrics": TEST_METRICS,
    "test_metrics_runs": TEST_METRICS_RUNS,
    "projects": PROJECTS,
    "workflow_jobs": WORKFLOW_JOBS,
    "job_tests": JOB_TESTS,
}
