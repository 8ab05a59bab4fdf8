"""The typed schema of the usage-export job-run table.

CSV columns come UPPER-CASE (48 of them, per the CircleCI spec field table); the output
columns are the same names lower-cased. Parsing rules (see `merge.py`):

- ``\\N`` is null everywhere.
- Flags accept ``Y/N``, ``true/false`` (any case) and ``1/0``.
- Timestamps accept ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC, no zone), ISO 8601 with ``T``
  and an optional ``Z``/offset (converted to UTC), and, for every column, a date only
  (midnight UTC). ``*_DATE`` columns are therefore timestamps too: lossless whether the
  export sends a date or a date-time.
- Credits are ``decimal128(18, 6)``: 12 integer digits and 6 decimal places. CircleCI bills
  whole credits and exports fractional credits with at most a few decimals; values with
  more than 6 decimals are rounded to 6 (half away from zero), which is far below the
  0.0006 USD price of one credit.
- ``PARALLELISM``, ``PIPELINE_NUMBER`` and ``JOB_RUN_NUMBER`` are int64;
  ``JOB_RUN_SECONDS`` and the CPU/RAM percentages are float64 (one third-party parser reads
  seconds as an int; a float holds both).

Three columns are added by the extractor: ``extra_columns`` (a JSON object of any unknown
CSV columns, so nothing the export sends is lost, null when there are none),
``export_window_start``/``export_window_end`` (the inclusive window of the export job the
row came from) and ``extracted_at``.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

__all__ = [
    "CSV_COLUMNS",
    "CREDIT_COLUMNS",
    "DECIMAL_PRECISION",
    "DECIMAL_SCALE",
    "FLAG_COLUMNS",
    "FLOAT_COLUMNS",
    "INT_COLUMNS",
    "QUARANTINE_SCHEMA",
    "REQUIRED_COLUMNS",
    "TIMESTAMP_COLUMNS",
    "USAGE_JOB_RUNS_SCHEMA",
    "column_kind",
]

#: The 48 CSV columns, in the spec's field-table order (the physical order may differ).
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "ORGANIZATION_ID", "ORGANIZATION_NAME", "ORGANIZATION_CREATED_DATE", "PROJECT_ID",
    "PROJECT_NAME", "PROJECT_CREATED_DATE", "LAST_BUILD_FINISHED_AT", "VCS_NAME", "VCS_URL",
    "VCS_BRANCH", "PIPELINE_ID", "PIPELINE_CREATED_AT", "PIPELINE_NUMBER",
    "IS_UNREGISTERED_USER", "PIPELINE_TRIGGER_SOURCE", "PIPELINE_TRIGGER_USER_ID",
    "WORKFLOW_ID", "WORKFLOW_NAME", "WORKFLOW_FIRST_JOB_QUEUED_AT",
    "WORKFLOW_FIRST_JOB_STARTED_AT", "WORKFLOW_STOPPED_AT", "IS_WORKFLOW_SUCCESSFUL",
    "JOB_NAME", "JOB_ID", "JOB_RUN_NUMBER", "JOB_RUN_DATE", "JOB_RUN_QUEUED_AT",
    "JOB_RUN_STARTED_AT", "JOB_RUN_STOPPED_AT", "JOB_BUILD_STATUS", "RESOURCE_CLASS",
    "OPERATING_SYSTEM", "EXECUTOR", "PARALLELISM", "JOB_RUN_SECONDS",
    "MEDIAN_CPU_UTILIZATION_PCT", "MAX_CPU_UTILIZATION_PCT", "MEDIAN_RAM_UTILIZATION_PCT",
    "MAX_RAM_UTILIZATION_PCT", "COMPUTE_CREDITS", "DLC_CREDITS", "USER_CREDITS",
    "STORAGE_CREDITS", "NETWORK_CREDITS", "LEASE_CREDITS", "LEASE_OVERAGE_CREDITS",
    "IPRANGES_CREDITS", "TOTAL_CREDITS",
)  # fmt: skip

#: Columns without which a part is rejected (``DataError``): the job-run key and what the
#: cost marts group by. Any other spec column may be absent (it is then null and reported).
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "ORGANIZATION_ID", "PROJECT_ID", "PROJECT_NAME", "WORKFLOW_ID", "WORKFLOW_NAME",
    "JOB_NAME", "JOB_ID", "JOB_RUN_STARTED_AT", "JOB_BUILD_STATUS", "RESOURCE_CLASS",
    "TOTAL_CREDITS",
)  # fmt: skip

DECIMAL_PRECISION: Final = 18
DECIMAL_SCALE: Final = 6

FLAG_COLUMNS: Final = frozenset({"IS_UNREGISTERED_USER", "IS_WORKFLOW_SUCCESSFUL"})
CREDIT_COLUMNS: Final = frozenset(c for c in CSV_COLUMNS if c.endswith("_CREDITS"))
INT_COLUMNS: Final = frozenset({"PIPELINE_NUMBER", "JOB_RUN_NUMBER", "PARALLELISM"})
FLOAT_COLUMNS: Final = frozenset({"JOB_RUN_SECONDS"} | {c for c in CSV_COLUMNS if c.endswith("_PCT")})
TIMESTAMP_COLUMNS: Final = frozenset(c for c in CSV_COLUMNS if c.endswith(("_AT", "_DATE")))

_TS = pa.timestamp("us", tz="UTC")
_DEC = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)


def column_kind(name: str) -> str:
    """The parsing kind of a CSV column: flag, credit, int, float, timestamp or string."""
    if name in FLAG_COLUMNS:
        return "flag"
    if name in CREDIT_COLUMNS:
        return "credit"
    if name in INT_COLUMNS:
        return "int"
    if name in FLOAT_COLUMNS:
        return "float"
    if name in TIMESTAMP_COLUMNS:
        return "timestamp"
    return "string"


_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "flag": pa.bool_(),
    "credit": _DEC,
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": _TS,
    "string": pa.string(),
}

#: One row per job run; primary key ``job_id`` (not null, unique within an extract).
USAGE_JOB_RUNS_SCHEMA: Final = pa.schema(
    [pa.field(c.lower(), _ARROW_TYPES[column_kind(c)], nullable=c != "JOB_ID") for c in CSV_COLUMNS]
    + [
        pa.field("extra_columns", pa.string()),
        pa.field("export_window_start", _TS, nullable=False),
        pa.field("export_window_end", _TS, nullable=False),
        pa.field("extracted_at", _TS, nullable=False),
    ]
)

#: Rows that could not be parsed, kept verbatim with the reason.
QUARANTINE_SCHEMA: Final = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: Field[T] is invariant, so mixed fields join to object
        pa.field("part", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("raw_line", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("export_window_start", _TS, nullable=False),
        pa.field("export_window_end", _TS, nullable=False),
        pa.field("extracted_at", _TS, nullable=False),
    ]
)
