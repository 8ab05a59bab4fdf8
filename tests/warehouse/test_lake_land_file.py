"""`Lake.land_file` (a Parquet file, partition by partition) leaves the same lake as `Lake.land`
(the whole table in memory), byte for byte, and checks its input before writing anything."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warehouse_helpers import ORG, T0, usage_table

import circleci_analytics.warehouse.lake as lake_module
from circleci_analytics.connectors.usage_export import PartInput, merge_parts
from circleci_analytics.connectors.usage_export.schema import QUARANTINE_SCHEMA, USAGE_JOB_RUNS_SCHEMA
from circleci_analytics.simulator import SimConfig
from circleci_analytics.simulator.history import History
from circleci_analytics.simulator.usage_export import ExportJob, plan_parts, render_part
from circleci_analytics.warehouse import Lake, LakeError

OTHER = "0b4e0c4e-0000-4000-8000-000000000001"


def _lake_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/**/*")) if p.is_file()}


def _both_ways(tmp_path: Path, name: str, data: pa.Table, existing: list[pa.Table], batch_rows: int = 7, **kw):
    """Land `data` with `land` into one lake and with `land_file` into another (both holding
    `existing` first); returns both results and both lakes' files."""
    source = tmp_path / "input" / "merged.parquet"
    source.parent.mkdir(exist_ok=True)
    pq.write_table(data, source, row_group_size=11)
    results, files = [], []
    for way in ("land", "land_file"):
        lake = Lake(tmp_path / way)
        for table in existing:
            lake.land(name, table)
        if way == "land":
            results.append(lake.land(name, pq.read_table(source), **kw))
        else:
            results.append(lake.land_file(name, source, batch_rows=batch_rows, **kw))
        files.append(_lake_files(tmp_path / way))
    assert sorted(p.name for p in source.parent.iterdir()) == ["merged.parquet"]  # scratch removed
    return results, files


def _mixed_usage() -> pa.Table:
    """Two orgs over four days, a key repeated within a partition and across partitions (the
    last row wins), and rows without a start time (partitioned by extracted_at)."""
    no_start = usage_table(3, prefix="nostart").set_column(
        USAGE_JOB_RUNS_SCHEMA.get_field_index("job_run_started_at"), "job_run_started_at",
        pa.nulls(3, pa.timestamp("us", tz="UTC")),
    )  # fmt: skip
    return pa.concat_tables([
        usage_table(80, credits="1"),
        usage_table(30, org=OTHER, prefix="o"),
        usage_table(5, credits="2"),  # job-0..4 again, same partition: replaced
        usage_table(4, start=T0 + timedelta(days=2), credits="3"),  # job-0..3 again, another day
        no_start,
    ])  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"window": (date(2026, 5, 5), date(2026, 5, 6))},
        {"window": (T0 + timedelta(hours=20), T0 + timedelta(days=2, hours=3))},  # partial days
        {"window": (date(2026, 5, 4), date(2026, 5, 8)), "scope": {"org_id": ORG}},
    ],
    ids=["merge", "whole-days", "partial-days", "scoped"],
)
def test_land_file_writes_the_same_lake_as_land(tmp_path, kw):
    existing = [usage_table(120, prefix="old", start=T0 - timedelta(days=1)), usage_table(10, org=OTHER, prefix="old")]
    (by_table, by_file), (a, b) = _both_ways(tmp_path, "usage_job_runs", _mixed_usage(), existing, **kw)
    assert a and a == b  # every partition file, byte for byte
    assert by_file.rows_in == by_table.rows_in == 80 + 30 + 3
    assert by_file.partitions_written == by_table.partitions_written
    assert by_file.partitions_deleted == by_table.partitions_deleted
    assert by_file.rows_written == by_table.rows_written


def test_an_empty_file_replaces_the_window_like_land(tmp_path):
    existing = [usage_table(72), usage_table(72, org=OTHER, prefix="o")]
    kw = {"window": (date(2026, 5, 5), date(2026, 5, 5)), "scope": {"org_id": ORG}}
    (by_table, by_file), (a, b) = _both_ways(tmp_path, "usage_job_runs", usage_table(0), existing, **kw)
    assert by_file.partitions_deleted == by_table.partitions_deleted == [f"org_id={ORG}/date=2026-05-05"]
    assert a == b


def test_quarantine_lands_the_same_both_ways(tmp_path):
    rows = [{"part": f"p{i % 3}", "line_number": i, "raw_line": f"a,b,{i}", "reason": "ragged",
             "export_window_start": T0 + timedelta(days=i % 2), "export_window_end": T0 + timedelta(days=3),
             "extracted_at": T0} for i in range(40)]  # fmt: skip
    data = pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
    (by_table, by_file), (a, b) = _both_ways(tmp_path, "usage_quarantine", data, [data.slice(0, 10)])
    assert len(a) == 2 and a == b
    assert by_file.rows_in == 40


def _simulator_export(tmp_path: Path) -> tuple[Path, datetime, datetime]:
    """The connectors' merged file for a real simulator export (tiny preset, 20 days)."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    config = SimConfig(seed=3, preset="tiny", now=now)
    history = History(config)
    start, end = now - timedelta(days=20), now - timedelta(microseconds=1)
    job = ExportJob("job", history.catalog.org.id, start, end, 0.0,
                    plan_parts(history, list(history.catalog.projects), start, end, 500))  # fmt: skip
    parts = []
    for part in job.parts:
        path = tmp_path / f"part-{part.index}.csv.gz"
        path.write_bytes(gzip.compress("".join(render_part(history, config, job, part)).encode()))
        parts.append(PartInput(path, path.name, start, end))
    out = tmp_path / "merged" / "usage.parquet"
    out.parent.mkdir()
    merge_parts(parts, out, tmp_path / "quarantine.parquet", extracted_at=now)
    return out, start, end


def test_a_merged_export_lands_the_same_both_ways(tmp_path):
    merged, start, end = _simulator_export(tmp_path)
    assert pq.ParquetFile(merged).metadata.num_rows > 1000
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    ra = a.land("usage_job_runs", pq.read_table(merged), window=(start, end))
    rb = b.land_file("usage_job_runs", merged, window=(start, end), batch_rows=257)
    assert ra.rows_in == rb.rows_in and ra.partitions_written == rb.partitions_written
    assert len(ra.partitions_written) == 20
    assert _lake_files(tmp_path / "a") == _lake_files(tmp_path / "b")
    # Re-landing (the nightly overlap) is idempotent too.
    b.land_file("usage_job_runs", merged, window=(start, end))
    assert _lake_files(tmp_path / "a") == _lake_files(tmp_path / "b")


def test_land_file_reads_in_bounded_batches(tmp_path, monkeypatch):
    source = tmp_path / "usage.parquet"
    pq.write_table(usage_table(200), source)  # one row group of 200 rows
    seen = []
    real = lake_module.conform
    monkeypatch.setattr(lake_module, "conform", lambda data, spec: seen.append(data.num_rows) or real(data, spec))
    Lake(tmp_path / "lake").land_file("usage_job_runs", source, batch_rows=16)
    assert max(seen) <= 16 and sum(seen) == 200


def test_bad_rows_late_in_the_file_fail_before_anything_is_written(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.land("usage_job_runs", usage_table(10, credits="1"))
    before = _lake_files(tmp_path / "lake")
    nullable = pa.schema([f.with_nullable(True) for f in USAGE_JOB_RUNS_SCHEMA])
    late = usage_table(1, prefix="late").cast(nullable)
    late = late.set_column(USAGE_JOB_RUNS_SCHEMA.get_field_index("job_id"), "job_id", pa.nulls(1, pa.string()))
    bad = pa.concat_tables([usage_table(60, credits="5").cast(nullable), late])
    source = tmp_path / "bad.parquet"
    pq.write_table(bad, source, row_group_size=10)
    with pytest.raises(LakeError, match="required column 'job_id' has 1 null"):
        lake.land_file("usage_job_runs", source, batch_rows=10)
    assert _lake_files(tmp_path / "lake") == before
    with pytest.raises(LakeError, match="unknown columns"):
        pq.write_table(usage_table(3).append_column("surprise", pa.array([1, 2, 3])), source)
        lake.land_file("usage_job_runs", source)
    assert _lake_files(tmp_path / "lake") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "lake"]
