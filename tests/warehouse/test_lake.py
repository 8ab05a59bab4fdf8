"""The lake writer: schemas, partitions, idempotency, windows, snapshots, atomicity, safety."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warehouse_helpers import ORG, T0, flaky_table, usage_table

from circleci_analytics.connectors.usage_export.schema import USAGE_JOB_RUNS_SCHEMA
from circleci_analytics.simulator.catalog import HOSTILE_BRANCH
from circleci_analytics.warehouse import TABLES, Lake, LakeError
from circleci_analytics.warehouse.lake import decode_partition_value, encode_partition_value


def _files_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the lake's tables (not the writer-lease record at the root)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/**/*")) if p.is_file()}


def test_every_table_has_a_schema_and_a_key():
    assert {"usage_job_runs", "job_tests", "workflow_runs", "projects", "workflow_summary", "flaky_tests"} <= set(
        TABLES
    )
    for spec in TABLES.values():
        assert spec.natural_key, spec.name
        assert set(spec.natural_key) <= set(spec.schema.names), spec.name
        for _, kind, col in spec.partition_by:
            assert col in spec.schema.names and kind in ("date", "value")
    assert TABLES["usage_job_runs"].schema.equals(USAGE_JOB_RUNS_SCHEMA)


def test_land_partitions_by_org_and_date(lake_root):
    lake = Lake(lake_root)
    res = lake.land("usage_job_runs", usage_table(30))  # 09:00 + 30 h: two days
    assert res.rows_in == 30
    assert lake.partitions("usage_job_runs") == [f"org_id={ORG}/date=2026-05-04", f"org_id={ORG}/date=2026-05-05"]
    table = lake.read("usage_job_runs")
    assert table.num_rows == 30
    assert table.schema.equals(USAGE_JOB_RUNS_SCHEMA)
    assert table.column("total_credits").type == pa.decimal128(18, 6)


def test_landing_twice_is_idempotent_byte_for_byte(lake_root):
    lake = Lake(lake_root)
    data = usage_table(30)
    lake.land("usage_job_runs", data)
    first = _files_bytes(lake_root)
    lake.land("usage_job_runs", data)
    # reversed input order too: files are sorted by natural key
    lake.land("usage_job_runs", data.take(list(range(29, -1, -1))))
    assert _files_bytes(lake_root) == first
    assert lake.read("usage_job_runs").num_rows == 30


def test_merge_replaces_rows_by_natural_key(lake_root):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(4, credits="1.5"))
    lake.land("usage_job_runs", usage_table(2, credits="9.25"))  # job-0, job-1 changed
    rows = {r["job_id"]: r["total_credits"] for r in lake.read("usage_job_runs").to_pylist()}
    assert rows == {
        "job-0": Decimal("9.25"),
        "job-1": Decimal("9.25"),
        "job-2": Decimal("1.5"),
        "job-3": Decimal("1.5"),
    }


def test_duplicate_keys_in_one_landing_keep_the_last(lake_root):
    lake = Lake(lake_root)
    data = pa.concat_tables([usage_table(2, credits="1"), usage_table(2, credits="2")])
    res = lake.land("usage_job_runs", data)
    assert res.rows_in == 2
    assert {r["total_credits"] for r in lake.read("usage_job_runs").to_pylist()} == {Decimal(2)}


def test_window_is_replaced_whole(lake_root):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(48))  # 2026-05-04 09:00 .. 05-06 08:00
    # Re-export of 05-05 only, where upstream now has fewer rows.
    day2 = datetime(2026, 5, 5, tzinfo=UTC)
    fewer = usage_table(3, start=day2 + timedelta(hours=2), prefix="new")
    res = lake.land("usage_job_runs", fewer, window=(date(2026, 5, 5), date(2026, 5, 5)))
    assert res.partitions_written == [f"org_id={ORG}/date=2026-05-05"]
    rows = lake.read("usage_job_runs").to_pylist()
    on_day2 = sorted(r["job_id"] for r in rows if r["job_run_started_at"].date() == date(2026, 5, 5))
    assert on_day2 == ["new-0", "new-1", "new-2"]
    assert sum(r["job_run_started_at"].date() == date(2026, 5, 4) for r in rows) == 15  # untouched
    assert sum(r["job_run_started_at"].date() == date(2026, 5, 6) for r in rows) == 9  # untouched


def test_empty_window_deletes_partitions_of_that_org_only(lake_root):
    lake = Lake(lake_root)
    other = "0b4e0c4e-0000-4000-8000-000000000001"
    lake.land("usage_job_runs", usage_table(5))
    lake.land("usage_job_runs", usage_table(5, org=other, prefix="o"))
    res = lake.land("usage_job_runs", usage_table(0), window=(T0, T0 + timedelta(days=1)), scope={"org_id": ORG})
    assert res.partitions_deleted == [f"org_id={ORG}/date=2026-05-04"]
    assert {r["organization_id"] for r in lake.read("usage_job_runs").to_pylist()} == {other}


def test_snapshots_accumulate_by_day(lake_root):
    lake = Lake(lake_root)
    d1 = datetime(2026, 5, 1, 6, tzinfo=UTC)
    lake.land("flaky_tests", flaky_table(d1, times=3))
    lake.land("flaky_tests", flaky_table(d1 + timedelta(hours=5), times=4))  # same day: replaces
    lake.land("flaky_tests", flaky_table(d1 + timedelta(days=120), times=9))  # beyond 90 days: kept
    rows = lake.read("flaky_tests").to_pylist()
    assert sorted((r["snapshot_date"], r["times_flaked"]) for r in rows) == [
        (date(2026, 5, 1), 4), (date(2026, 8, 29), 9)]  # fmt: skip
    assert lake.partitions("flaky_tests") == ["snapshot_date=2026-05-01", "snapshot_date=2026-08-29"]


def test_unknown_columns_and_missing_required_are_refused(lake_root):
    lake = Lake(lake_root)
    with pytest.raises(LakeError, match="unknown columns"):
        lake.land("usage_job_runs", usage_table(1).append_column("surprise", pa.array([1])))
    with pytest.raises(LakeError, match="required column 'job_id'"):
        lake.land("usage_job_runs", usage_table(1).drop_columns(["job_id"]))
    with pytest.raises(KeyError, match="unknown lake table"):
        lake.land("nope", usage_table(1))
    assert lake.files("usage_job_runs") == []


def test_missing_nullable_columns_land_as_nulls(lake_root):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(2).drop_columns(["vcs_url", "dlc_credits"]))
    t = lake.read("usage_job_runs")
    assert t.column("dlc_credits").null_count == 2


@pytest.mark.parametrize("value", [HOSTILE_BRANCH, "..", ".", "a/b", "../../etc", "__null__", "", "ünï"])
def test_partition_values_cannot_escape_the_root(lake_root, value):
    encoded = encode_partition_value(value)
    assert "/" not in encoded and encoded not in ("", ".", "..")
    assert decode_partition_value(encoded) == value
    lake = Lake(lake_root)
    # The org id is the only free-text partition value: land a hostile one.
    lake.land("usage_job_runs", usage_table(2, org=value, branch=HOSTILE_BRANCH))
    for f in lake_root.rglob("*"):
        assert f.resolve().is_relative_to(lake_root.resolve())
    rows = lake.read("usage_job_runs").to_pylist()
    assert {r["organization_id"] for r in rows} == {value}
    assert {r["vcs_branch"] for r in rows} == {HOSTILE_BRANCH}
    assert all("=" in seg for p in lake.partitions("usage_job_runs") for seg in p.split("/"))


def test_branch_names_never_reach_paths(lake_root):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(3, branch=HOSTILE_BRANCH))
    paths = [str(p) for p in lake_root.rglob("*")]
    assert not any("quoted" in p or "ünïcode" in p for p in paths)


def test_crash_while_writing_keeps_the_old_partition(lake_root, monkeypatch):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(3, credits="1"))
    before = _files_bytes(lake_root)

    def boom(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")  # a partial temporary file
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        lake.land("usage_job_runs", usage_table(3, credits="2"))
    monkeypatch.undo()
    assert _files_bytes(lake_root) == before  # no temporary file left, old data intact
    assert {r["total_credits"] for r in lake.read("usage_job_runs").to_pylist()} == {Decimal(1)}


def test_readers_ignore_temporary_files(lake_root):
    lake = Lake(lake_root)
    lake.land("usage_job_runs", usage_table(2))
    (part,) = lake.files("usage_job_runs")
    Path(part).with_name(".data.parquet.deadbeef.tmp").write_bytes(b"junk")
    assert lake.read("usage_job_runs").num_rows == 2
    assert len(lake.files("usage_job_runs")) == 1
    assert os.path.exists(part)
