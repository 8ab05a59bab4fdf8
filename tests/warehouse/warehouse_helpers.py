"""Helpers for warehouse tests: small Arrow tables in the lake schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from circleci_analytics.connectors.schemas import FLAKY_TESTS
from circleci_analytics.connectors.usage_export.schema import USAGE_JOB_RUNS_SCHEMA

ORG = "83d65638-c295-4ef6-af1c-f71242ad0348"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def usage_table(n: int = 6, *, org: str = ORG, start: datetime = T0, credits: str = "1.5", branch: str = "main",
                prefix: str = "job") -> pa.Table:  # fmt: skip
    """`n` usage rows, one per hour from `start` (so they span days when n > 24)."""
    rows = []
    for i in range(n):
        at = start + timedelta(hours=i)
        rows.append({
            "organization_id": org, "project_id": "p1", "project_name": "web-app", "vcs_branch": branch,
            "vcs_url": "https://github.com/acme/web-app", "pipeline_id": f"pl{i // 3}", "workflow_id": f"wf{i}",
            "workflow_name": "build", "job_name": "test", "job_id": f"{prefix}-{i}", "job_run_number": i + 1,
            "job_run_started_at": at, "job_run_queued_at": at - timedelta(seconds=5),
            "job_run_stopped_at": at + timedelta(seconds=90), "job_build_status": "success",
            "resource_class": "medium", "executor": "docker", "parallelism": 1, "job_run_seconds": 90.0,
            "compute_credits": Decimal(credits), "total_credits": Decimal(credits),
            "export_window_start": start, "export_window_end": start + timedelta(days=3), "extracted_at": start,
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=USAGE_JOB_RUNS_SCHEMA)


def flaky_table(extracted_at: datetime, times: int = 3) -> pa.Table:
    return pa.Table.from_pylist(
        [{"project_slug": "gh/acme/web-app", "test_name": "t1", "classname": "C", "file": "f.py", "job_name": "test",
          "times_flaked": times, "extracted_at": extracted_at}],
        schema=FLAKY_TESTS,
    )  # fmt: skip
