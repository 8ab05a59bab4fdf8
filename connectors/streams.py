"""Declarative stream descriptions, the ``Extract`` result type and record helpers.

Each stream is described once (endpoint template, pagination, incremental cursor,
primary key, write mode, Arrow schema), in the spirit of dlt's ``rest_api``
resources; the extractor modules (``insights``, ``projects``, ``tests_metadata``)
only map API records to rows. ``fetch_records`` is the one generic loop.

Scopes (Insights ``branch`` / ``all-branches`` parameters):

* ``"default-branch"`` - neither parameter (CircleCI's default),
* ``"all-branches"``   - ``all-branches=true``,
* anything else        - that branch name (``branch=<name>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from circleci_analytics.connectors import schemas
from circleci_analytics.connectors.encoding import render_path
from circleci_analytics.connectors.errors import DataError

if TYPE_CHECKING:
    from circleci_analytics.connectors.client import CircleCIClient

__all__ = [
    "ALL_BRANCHES",
    "DEFAULT_BRANCH",
    "STREAMS",
    "Extract",
    "StreamSpec",
    "build_table",
    "fetch_records",
    "parse_timestamp",
    "scope_params",
    "utcnow",
]

DEFAULT_BRANCH = "default-branch"
ALL_BRANCHES = "all-branches"
REPORTING_WINDOWS = ("last-24-hours", "last-7-days", "last-30-days", "last-60-days", "last-90-days")

WriteMode = Literal["append", "merge", "replace"]


@dataclass(frozen=True)
class StreamSpec:
    """What one stream is: where it comes from and how it lands."""

    name: str
    path: str  # template, e.g. "/insights/{project_slug}/workflows"
    schema: pa.Schema
    primary_key: tuple[str, ...]
    paginated: bool = False
    items_key: str | None = "items"  # None: the whole body is one record
    cursor: str | None = None  # incremental column (watermark source)
    cursor_param: str | None = None  # query parameter the cursor feeds
    write_mode: WriteMode = "merge"
    params: Mapping[str, Any] = field(default_factory=dict)  # fixed query parameters
    description: str = ""


_INS = "/insights/{project_slug}"
_WF = _INS + "/workflows/{workflow_name}"

STREAMS: dict[str, StreamSpec] = {
    s.name: s
    for s in [
        StreamSpec(
            name="org_summary",
            path="/insights/{org_slug}/summary",
            schema=schemas.ORG_SUMMARY,
            primary_key=("org_slug", "reporting_window", "extracted_at"),
            items_key=None,
            write_mode="append",
            description="One row per org x reporting window x extraction (org_data).",
        ),
        StreamSpec(
            name="org_project_summary",
            path="/insights/{org_slug}/summary",
            schema=schemas.ORG_PROJECT_SUMMARY,
            primary_key=("org_slug", "reporting_window", "project_name", "extracted_at"),
            items_key="org_project_data",
            write_mode="append",
            description="One row per org x reporting window x project x extraction.",
        ),
        StreamSpec(
            name="project_summary",
            path="/insights/pages/{project_slug}/summary",
            schema=schemas.PROJECT_SUMMARY,
            primary_key=("project_slug", "reporting_window", "extracted_at"),
            items_key=None,
            write_mode="append",
        ),
        StreamSpec(
            name="project_workflow_summary",
            path="/insights/pages/{project_slug}/summary",
            schema=schemas.PROJECT_WORKFLOW_SUMMARY,
            primary_key=("project_slug", "reporting_window", "workflow_name", "extracted_at"),
            items_key="project_workflow_data",
            write_mode="append",
        ),
        StreamSpec(
            name="project_workflow_branch_summary",
            path="/insights/pages/{project_slug}/summary",
            schema=schemas.PROJECT_WORKFLOW_BRANCH_SUMMARY,
            primary_key=("project_slug", "reporting_window", "workflow_name", "branch", "extracted_at"),
            items_key="project_workflow_branch_data",
            write_mode="append",
        ),
        StreamSpec(
            name="workflow_metrics",
            path=_INS + "/workflows",
            schema=schemas.WORKFLOW_METRICS,
            primary_key=("project_slug", "scope", "reporting_window", "workflow_name", "extracted_at"),
            paginated=True,
            write_mode="append",
        ),
        StreamSpec(
            name="workflow_job_metrics",
            path=_WF + "/jobs",
            schema=schemas.WORKFLOW_JOB_METRICS,
            primary_key=("project_slug", "scope", "reporting_window", "workflow_name", "job_name", "extracted_at"),
            paginated=True,
            write_mode="append",
        ),
        StreamSpec(
            name="workflow_summary",
            path=_WF + "/summary",
            schema=schemas.WORKFLOW_SUMMARY,
            primary_key=("project_slug", "scope", "workflow_name", "extracted_at"),
            items_key=None,
            write_mode="append",
        ),
        StreamSpec(
            name="workflow_runs",
            path=_WF,
            schema=schemas.WORKFLOW_RUNS,
            primary_key=("workflow_id",),
            paginated=True,
            cursor="created_at",
            cursor_param="start-date",
            write_mode="merge",
            description="Incremental by start-date = watermark - overlap; end-date <= start + 90 days.",
        ),
        StreamSpec(
            name="job_timeseries",
            path="/insights/time-series/{project_slug}/workflows/{workflow_name}/jobs",
            schema=schemas.JOB_TIMESERIES,
            primary_key=("project_slug", "workflow_name", "branch", "granularity", "job_name", "bucket_start"),
            paginated=True,
            cursor="bucket_start",
            cursor_param="start-date",
            params={"granularity": "daily"},
            write_mode="merge",
        ),
        StreamSpec(
            name="branches",
            path=_INS + "/branches",
            schema=schemas.BRANCHES,
            primary_key=("project_slug", "workflow_name", "branch"),
            items_key=None,
            write_mode="replace",
        ),
        StreamSpec(
            name="flaky_tests",
            path=_INS + "/flaky-tests",
            schema=schemas.FLAKY_TESTS,
            primary_key=("project_slug", "test_name", "classname", "job_name", "extracted_at"),
            items_key=None,
            write_mode="append",
        ),
        StreamSpec(
            name="test_metrics",
            path=_WF + "/test-metrics",
            schema=schemas.TEST_METRICS,
            primary_key=("project_slug", "workflow_name", "scope", "category", "test_name", "classname", "extracted_at"),
            items_key=None,
            write_mode="append",
        ),
        StreamSpec(
            name="test_metrics_runs",
            path=_WF + "/test-metrics",
            schema=schemas.TEST_METRICS_RUNS,
            primary_key=("project_slug", "workflow_name", "scope", "workflow_id"),
            items_key="test_runs",
            write_mode="merge",
        ),
        StreamSpec(
            name="projects",
            path="/project/{project_slug}",
            schema=schemas.PROJECTS,
            primary_key=("project_id",),
            items_key=None,
            write_mode="merge",
        ),
        StreamSpec(
            name="workflow_jobs",
            path="/workflow/{workflow_id}/job",
            schema=schemas.WORKFLOW_JOBS,
            primary_key=("workflow_id", "job_id"),
            paginated=True,
            write_mode="merge",
            description="Discovered via /project/{slug}/pipeline -> /pipeline/{id}/workflow -> /workflow/{id}/job.",
        ),
        StreamSpec(
            name="job_tests",
            path="/project/{project_slug}/{job_number}/tests",
            schema=schemas.JOB_TESTS,
            primary_key=("project_slug", "job_number", "classname", "name", "file"),
            paginated=True,
            write_mode="append",
            description="Only jobs not yet landed are fetched, so appends do not duplicate.",
        ),
    ]
}


@dataclass(frozen=True)
class Extract:
    """One extracted table plus where/when it came from."""

    stream: str
    table: pa.Table
    extracted_at: datetime
    org_slug: str | None = None
    project_slug: str | None = None
    scope: str | None = None  # "default-branch" | "all-branches" | a branch name
    reporting_window: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    watermark: datetime | None = None  # max cursor value seen (incremental streams)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> StreamSpec:
        return STREAMS[self.stream]

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def metadata(self) -> dict[str, str]:
        """String key/values (for Parquet metadata or a run artifact); ``None`` values omitted."""
        out: dict[str, str] = {"stream": self.stream}
        for key in ("org_slug", "project_slug", "scope", "reporting_window"):
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value)
        for key in ("extracted_at", "start", "end", "watermark"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.isoformat()
        for key, value in self.extra.items():
            out[key] = str(value)
        return out


def utcnow() -> datetime:
    """Current time, UTC, truncated to microseconds."""
    return datetime.now(UTC)


def scope_params(scope: str) -> dict[str, Any]:
    """Query parameters for a scope (see module docstring)."""
    if scope == DEFAULT_BRANCH:
        return {}
    if scope == ALL_BRANCHES:
        return {"all-branches": True}
    if not scope:
        raise ValueError("scope must be 'default-branch', 'all-branches' or a branch name")
    return {"branch": scope}


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an API timestamp (ISO 8601, ``Z`` or offset, or naive = UTC); ``None``/``""`` -> ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise DataError(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def build_table(stream: str, rows: Iterable[Mapping[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """Rows -> Arrow table with the stream's explicit schema; shape problems raise ``DataError``."""
    schema = schema or STREAMS[stream].schema
    rows = list(rows)
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise DataError(f"stream {stream!r}: records do not fit the schema: {exc}") from exc
    for fld in schema:
        if not fld.nullable and table.column(fld.name).null_count:
            raise DataError(f"stream {stream!r}: required column {fld.name!r} has null values")
    return table


async def fetch_records(
    client: CircleCIClient,
    spec: StreamSpec,
    *,
    params: Mapping[str, Any] | None = None,
    resource: str | None = None,
    **path_values: Any,
) -> list[dict[str, Any]]:
    """Fetch a stream's raw records: all pages of a paginated stream, else the body (or its list)."""
    path = render_path(spec.path, **path_values)
    query = {**spec.params, **(params or {})}
    if spec.paginated:
        return [item async for item in client.paginate(path, query, resource=resource)]
    body = await client.get_json(path, query, resource=resource)
    if spec.items_key is None:
        if not isinstance(body, dict):
            raise DataError(f"stream {spec.name!r}: expected a JSON object, got {type(body).__name__}")
        return [body]
    if not isinstance(body, dict):
        raise DataError(f"stream {spec.name!r}: expected a JSON object, got {type(body).__name__}")
    items = body.get(spec.items_key) or []
    if not isinstance(items, list):
        raise DataError(f"stream {spec.name!r}: {spec.items_key!r} is not a list")
    return items
