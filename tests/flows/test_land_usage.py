"""`land_usage`: the merged export lands partition by partition, replacing only its org's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from circleci_analytics.connectors.usage_export import UsageExportResult
from circleci_analytics.connectors.usage_export.schema import QUARANTINE_SCHEMA, USAGE_JOB_RUNS_SCHEMA
from circleci_analytics.flows.steps import land_usage
from circleci_analytics.warehouse import Lake

ORG_A, ORG_B = "83d65638-c295-4ef6-af1c-f71242ad0348", "0b4e0c4e-0000-4000-8000-000000000001"
START = datetime(2026, 5, 4, tzinfo=UTC)
END = START + timedelta(days=3) - timedelta(microseconds=1)


def usage(org: str, n: int) -> pa.Table:
    """`n` job runs of `org`, one every 2 hours from START (three days for n = 36)."""
    return pa.Table.from_pylist(
        [{"organization_id": org, "job_id": f"{org[:4]}-{i}", "job_run_started_at": START + timedelta(hours=2 * i),
          "total_credits": 1, "export_window_start": START, "export_window_end": END, "extracted_at": END}
         for i in range(n)],
        schema=pa.schema([USAGE_JOB_RUNS_SCHEMA.field(c) for c in ("organization_id", "job_id", "job_run_started_at",
                          "total_credits", "export_window_start", "export_window_end", "extracted_at")]),
    )  # fmt: skip


def export(tmp_path: Path, org: str, table: pa.Table, quarantine: pa.Table | None = None) -> UsageExportResult:
    out, bad = tmp_path / f"{org}.parquet", tmp_path / f"{org}.quarantine.parquet"
    pq.write_table(table, out)
    pq.write_table(quarantine if quarantine is not None else QUARANTINE_SCHEMA.empty_table(), bad)
    n_bad = 0 if quarantine is None else quarantine.num_rows
    return UsageExportResult(org, START, END, (), (), out, bad, table.num_rows, 1, n_bad, 0, 0, (), (), {}, {})


def test_an_empty_export_empties_only_its_own_org(tmp_path):
    lake = Lake(tmp_path / "lake")
    assert land_usage(lake, export(tmp_path, ORG_A, usage(ORG_A, 36))) == {"usage_job_runs": 36}
    land_usage(lake, export(tmp_path, ORG_B, usage(ORG_B, 36)))
    # Org B's jobs in the window were all deleted upstream: its export is empty.
    assert land_usage(lake, export(tmp_path, ORG_B, usage(ORG_B, 0))) == {"usage_job_runs": 0}
    orgs = lake.read("usage_job_runs").column("organization_id").to_pylist()
    assert orgs == [ORG_A] * 36


def test_quarantined_rows_land_beside(tmp_path):
    lake = Lake(tmp_path / "lake")
    bad = pa.Table.from_pylist(
        [{"part": "p0", "line_number": 7, "raw_line": "x,y", "reason": "ragged", "export_window_start": START,
          "export_window_end": END, "extracted_at": END}], schema=QUARANTINE_SCHEMA)  # fmt: skip
    landed = land_usage(lake, export(tmp_path, ORG_A, usage(ORG_A, 5), bad))
    assert landed == {"usage_job_runs": 5, "usage_quarantine": 1}
    assert lake.read("usage_quarantine").column("raw_line").to_pylist() == ["x,y"]
