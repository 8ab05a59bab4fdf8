"""An object-store lake (S3 API of moto's server on loopback) lands and builds like a local one."""

from __future__ import annotations

from decimal import Decimal

import duckdb
from warehouse_helpers import ORG, usage_table

from circleci_analytics.simulator.catalog import HOSTILE_BRANCH
from circleci_analytics.warehouse import build_warehouse


def test_s3_lake_lands_idempotently_and_builds(s3_lake, tmp_path):
    assert not s3_lake.is_local
    data = usage_table(30, branch=HOSTILE_BRANCH)
    s3_lake.land("usage_job_runs", data)
    s3_lake.land("usage_job_runs", data)
    assert s3_lake.partitions("usage_job_runs") == [f"org_id={ORG}/date=2026-05-04", f"org_id={ORG}/date=2026-05-05"]
    table = s3_lake.read("usage_job_runs")
    assert table.num_rows == 30
    assert set(table.column("vcs_branch").to_pylist()) == {HOSTILE_BRANCH}

    result = build_warehouse(s3_lake, tmp_path / "w.duckdb")
    assert result.failed_tests == []
    con = duckdb.connect(str(result.db_path), read_only=True)
    # Sources were copied into the file: the warehouse works without the object store.
    n, credits = con.execute("select count(*), sum(total_credits) from fct_job_runs").fetchone()
    assert (n, credits) == (30, Decimal("45"))
    assert con.execute("select count(*) from stg_usage__job_runs").fetchone()[0] == 30
    con.close()
