"""Every lake table, registered in one place: name -> schema, natural key, partitioning.

Schemas come from the connectors (``connectors.schemas``, ``connectors.usage_export.schema``);
the lake adds at most one derived column (``snapshot_date`` for Insights snapshots).

Partitioning (hive style, ``key=value`` directories) uses only safe values: dates and the
organisation id (a UUID, and encoded anyway, see ``warehouse.lake.encode_partition_value``).
Branch names, workflow names and other free text are never part of a path.

Write modes:

* ``merge``    - rows are keyed by ``natural_key``; landing a row again replaces it.
  The partition of a row is a function of the row, so a key never moves partition.
* ``snapshot`` - Insights answers are point-in-time; each extraction lands under
  ``snapshot_date`` (the UTC date of ``extracted_at``), keyed by the stream's key with
  ``extracted_at`` replaced by ``snapshot_date`` (the latest extraction of a day wins).
  Snapshots accumulate, so history outlives Insights' 90-day retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from circleci_analytics.connectors import schemas as cs
from circleci_analytics.connectors.usage_export.schema import QUARANTINE_SCHEMA, USAGE_JOB_RUNS_SCHEMA

__all__ = ["TABLES", "TableSpec", "table_spec"]

WriteMode = Literal["merge", "snapshot"]


@dataclass(frozen=True)
class TableSpec:
    """How one lake table is laid out.

    ``partition_by`` maps each partition key to its source: ``("date", "<timestamp column>")``
    partitions by the UTC date of that column (falling back to ``extracted_at`` when null),
    ``("value", "<column>")`` by the (encoded) column value.
    """

    name: str
    schema: pa.Schema
    natural_key: tuple[str, ...]
    partition_by: tuple[tuple[str, str, str], ...] = ()  # (partition key, kind, source column)
    mode: WriteMode = "merge"
    description: str = ""

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.partition_by)


def _snapshot(name: str, schema: pa.Schema, key: tuple[str, ...], description: str = "") -> TableSpec:
    lake_schema = schema.append(pa.field("snapshot_date", pa.date32(), nullable=False))
    natural = tuple(k for k in key if k != "extracted_at") + ("snapshot_date",)
    return TableSpec(
        name, lake_schema, natural, (("snapshot_date", "date", "snapshot_date"),), "snapshot", description
    )


#: What the alerts (``alerts/``) sent: one row per rule x incident x destination. Not from the
#: API: written after each nightly build, so it outlives the warehouse that is rebuilt each night.
ALERT_HISTORY_SCHEMA = pa.schema([
    pa.field("rule", pa.string(), nullable=False),
    pa.field("incident_key", pa.string(), nullable=False),
    pa.field("destination", pa.string(), nullable=False),
    pa.field("subject", pa.string()),
    pa.field("figure", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("unit", pa.string()),
    pa.field("line", pa.string()),
    pa.field("page", pa.string()),
    pa.field("as_of_date", pa.date32()),
    pa.field("run_id", pa.string()),
    pa.field("first_attempt_at", pa.timestamp("us", tz="UTC")),
    pa.field("attempts", pa.int32()),
    pa.field("delivered_at", pa.timestamp("us", tz="UTC")),
    pa.field("error", pa.string()),
    pa.field("extracted_at", pa.timestamp("us", tz="UTC"), nullable=False),
])  # fmt: skip

_TABLES: list[TableSpec] = [
    TableSpec(
        "usage_job_runs",
        USAGE_JOB_RUNS_SCHEMA,
        ("job_id",),
        (("org_id", "value", "organization_id"), ("date", "date", "job_run_started_at")),
        description="Usage export: one row per job run (billing-grade credits).",
    ),
    TableSpec(
        "usage_quarantine",
        QUARANTINE_SCHEMA,
        ("export_window_start", "part", "line_number"),
        (("date", "date", "export_window_start"),),
        description="Usage-export rows that could not be parsed, verbatim with the reason.",
    ),
    TableSpec(
        "job_tests",
        cs.JOB_TESTS,
        ("project_slug", "job_number", "classname", "name", "file"),
        (("date", "date", "job_started_at"),),
        description="One row per test result of a job run.",
    ),
    TableSpec(
        "workflow_runs",
        cs.WORKFLOW_RUNS,
        ("workflow_id",),
        (("date", "date", "created_at"),),
        description="Insights workflow runs (one row per workflow run).",
    ),
    TableSpec(
        "workflow_jobs",
        cs.WORKFLOW_JOBS,
        ("workflow_id", "job_id"),
        (("date", "date", "workflow_created_at"),),
        description="Jobs of recent workflows (core API).",
    ),
    TableSpec(
        "job_timeseries",
        cs.JOB_TIMESERIES,
        ("project_slug", "workflow_name", "branch", "granularity", "job_name", "bucket_start"),
        (("date", "date", "bucket_start"),),
        description="Insights job time series buckets.",
    ),
    TableSpec("projects", cs.PROJECTS, ("project_id",), description="Project metadata (slug, default branch)."),
    _snapshot("org_summary", cs.ORG_SUMMARY, ("org_slug", "reporting_window", "extracted_at")),
    _snapshot(
        "org_project_summary", cs.ORG_PROJECT_SUMMARY, ("org_slug", "reporting_window", "project_name", "extracted_at")
    ),
    _snapshot("project_summary", cs.PROJECT_SUMMARY, ("project_slug", "reporting_window", "extracted_at")),
    _snapshot(
        "project_workflow_summary",
        cs.PROJECT_WORKFLOW_SUMMARY,
        ("project_slug", "reporting_window", "workflow_name", "extracted_at"),
    ),
    _snapshot(
        "project_workflow_branch_summary",
        cs.PROJECT_WORKFLOW_BRANCH_SUMMARY,
        ("project_slug", "reporting_window", "workflow_name", "branch", "extracted_at"),
    ),
    _snapshot(
        "workflow_metrics",
        cs.WORKFLOW_METRICS,
        ("project_slug", "scope", "reporting_window", "workflow_name", "extracted_at"),
    ),
    _snapshot(
        "workflow_job_metrics",
        cs.WORKFLOW_JOB_METRICS,
        ("project_slug", "scope", "reporting_window", "workflow_name", "job_name", "extracted_at"),
    ),
    _snapshot("workflow_summary", cs.WORKFLOW_SUMMARY, ("project_slug", "scope", "workflow_name", "extracted_at")),
    _snapshot("branches", cs.BRANCHES, ("project_slug", "workflow_name", "branch")),
    _snapshot(
        "flaky_tests", cs.FLAKY_TESTS, ("project_slug", "test_name", "classname", "file", "job_name", "extracted_at")
    ),
    _snapshot(
        "test_metrics",
        cs.TEST_METRICS,
        ("project_slug", "workflow_name", "scope", "category", "test_name", "classname", "extracted_at"),
    ),
    _snapshot("test_metrics_runs", cs.TEST_METRICS_RUNS, ("project_slug", "workflow_name", "scope", "workflow_id")),
    TableSpec(
        "alert_history",
        ALERT_HISTORY_SCHEMA,
        ("rule", "incident_key", "destination"),
        description="Alerts per rule x incident x destination: delivered or not, attempts (written by alerts/).",
    ),
]

#: The registry: lake table name -> its spec.
TABLES: dict[str, TableSpec] = {t.name: t for t in _TABLES}


def table_spec(name: str) -> TableSpec:
    """The spec of lake table `name` (``KeyError`` with the known names otherwise)."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown lake table {name!r}; known tables: {', '.join(sorted(TABLES))}") from None
