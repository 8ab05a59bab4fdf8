"""An object-store lake (S3 API of moto's server on loopback) lands and builds like a local one."""

from __future__ import annotations

import socket
from decimal import Decimal

import duckdb
import pytest
from warehouse_helpers import ORG, usage_table

from simulator.catalog import HOSTILE_BRANCH
from warehouse import Lake, build_warehouse

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_lake(s3_endpoint, monkeypatch) -> Lake:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="lake-bucket")
    yield Lake(f"s3://lake-bucket/analytics/lake?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")
    for obj in s3.list_objects_v2(Bucket="lake-bucket").get("Contents", []):
        s3.delete_object(Bucket="lake-bucket", Key=obj["Key"])
    s3.delete_bucket(Bucket="lake-bucket")


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
