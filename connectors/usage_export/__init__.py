"""CircleCI usage export -> typed Parquet (one row per job run).

    from circleci_analytics.connectors.usage_export import export_usage
    result = await export_usage(client, org_id, start, end, workdir="data/usage")
    result.output       # Path of usage_job_runs.parquet (schema USAGE_JOB_RUNS_SCHEMA)
    result.quarantine   # Path of usage_quarantine.parquet (malformed rows, with reasons)

Modules: ``windows`` (31-day windows), ``state`` (durable per-window job state),
``merge`` (gzip checks, CSV parts -> Parquet), ``schema`` (the Arrow schemas), ``export``
(the job state machine and ``export_usage``; parts are downloaded by the API client).
"""

from circleci_analytics.connectors.usage_export.export import (
    DEFAULT_POLL_INTERVAL,
    UsageExportError,
    UsageExportResult,
    export_usage,
)
from circleci_analytics.connectors.usage_export.merge import MergeStats, PartInput, UsageMerger, check_gzip, merge_parts
from circleci_analytics.connectors.usage_export.schema import (
    CSV_COLUMNS,
    QUARANTINE_SCHEMA,
    REQUIRED_COLUMNS,
    USAGE_JOB_RUNS_SCHEMA,
)
from circleci_analytics.connectors.usage_export.state import (
    ExportState,
    LocalStateStore,
    MemoryStateStore,
    StateStore,
    state_key,
)
from circleci_analytics.connectors.usage_export.windows import Window, plan_windows

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_POLL_INTERVAL",
    "QUARANTINE_SCHEMA",
    "REQUIRED_COLUMNS",
    "USAGE_JOB_RUNS_SCHEMA",
    "ExportState",
    "LocalStateStore",
    "MemoryStateStore",
    "MergeStats",
    "PartInput",
    "StateStore",
    "UsageExportError",
    "UsageExportResult",
    "UsageMerger",
    "Window",
    "check_gzip",
    "export_usage",
    "merge_parts",
    "plan_windows",
    "state_key",
]
