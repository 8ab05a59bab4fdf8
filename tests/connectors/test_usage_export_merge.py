"""Usage-export CSV merge: small generated gzipped parts -> typed Parquet + quarantine."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.usage_export import (
    CSV_COLUMNS,
    QUARANTINE_SCHEMA,
    USAGE_JOB_RUNS_SCHEMA,
    PartInput,
    check_gzip,
    merge_parts,
)
from circleci_analytics.connectors.usage_export.merge import parse_timestamps
from circleci_analytics.connectors.usage_export.schema import column_kind

W_START = datetime(2026, 5, 1, tzinfo=UTC)
W_END = datetime(2026, 5, 31, tzinfo=UTC)
EXTRACTED = datetime(2026, 6, 1, 12, tzinfo=UTC)


def row(job_id: str, **overrides: str) -> dict[str, str]:
    """A valid export row (all text), with overrides."""
    values: dict[str, str] = {}
    for c in CSV_COLUMNS:
        kind = column_kind(c)
        values[c] = {
            "flag": "true",
            "credit": "1.25",
            "int": "2",
            "float": "61.5",
            "timestamp": "2026-05-03 10:11:12",
            "string": f"{c.lower()}-x",
        }[kind]
    values["JOB_ID"] = job_id
    values.update(overrides)
    return values


def write_part(
    path: Path, header: list[str], rows: list[dict[str, str]] | None = None, lines: list[str] | None = None
) -> Path:
    text = ",".join(header) + "\n"
    for r in rows or []:
        text += ",".join(r[c] for c in header) + "\n"
    for line in lines or []:
        text += line + "\n"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def merge(tmp_path: Path, *paths: Path):
    parts = [PartInput(p, p.name, W_START, W_END) for p in paths]
    stats = merge_parts(parts, tmp_path / "out.parquet", tmp_path / "q.parquet", extracted_at=EXTRACTED)
    return stats, pl.read_parquet(tmp_path / "out.parquet"), pl.read_parquet(tmp_path / "q.parquet")


def test_parts_with_shuffled_column_order_merge_by_name(tmp_path: Path) -> None:
    header = list(CSV_COLUMNS)
    shuffled = header[::-1]
    a = write_part(tmp_path / "a.csv.gz", header, [row("j1", TOTAL_CREDITS="3.5", JOB_NAME="build")])
    b = write_part(tmp_path / "b.csv.gz", shuffled, [row("j2", TOTAL_CREDITS="4.25", JOB_NAME="test")])
    stats, df, q = merge(tmp_path, a, b)
    assert stats.rows == 2 and stats.parts == 2 and q.height == 0
    got = {r["job_id"]: (r["job_name"], r["total_credits"]) for r in df.iter_rows(named=True)}
    assert got == {"j1": ("build", Decimal("3.5")), "j2": ("test", Decimal("4.25"))}


def test_output_has_the_explicit_arrow_schema(tmp_path: Path) -> None:
    a = write_part(tmp_path / "a.csv.gz", list(CSV_COLUMNS), [row("j1")])
    merge(tmp_path, a)
    assert pq.read_schema(tmp_path / "out.parquet").equals(USAGE_JOB_RUNS_SCHEMA)
    assert pq.read_schema(tmp_path / "q.parquet").equals(QUARANTINE_SCHEMA)
    assert len(USAGE_JOB_RUNS_SCHEMA) == 48 + 4
    assert USAGE_JOB_RUNS_SCHEMA.field("total_credits").type.scale == 6


def test_typed_values_and_backslash_n_nulls(tmp_path: Path) -> None:
    r = row(
        "j1",
        MEDIAN_CPU_UTILIZATION_PCT="\\N",
        VCS_BRANCH="\\N",
        PARALLELISM="4",
        JOB_RUN_SECONDS="12.5",
        COMPUTE_CREDITS="0.1234567",
        DLC_CREDITS="\\N",
        JOB_RUN_DATE="2026-05-03",
        JOB_RUN_STARTED_AT="2026-05-03 10:11:12.250000",
        JOB_RUN_STOPPED_AT="2026-05-03T12:00:00+02:00",
        JOB_RUN_QUEUED_AT="2026-05-03T10:00:00Z",
    )
    _, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", list(CSV_COLUMNS), [r]))
    got = df.row(0, named=True)
    assert got["median_cpu_utilization_pct"] is None
    assert got["vcs_branch"] is None
    assert got["dlc_credits"] is None
    assert got["parallelism"] == 4
    assert got["job_run_seconds"] == 12.5
    assert got["compute_credits"] == Decimal("0.123457")  # rounded to 6 places
    assert got["job_run_date"] == datetime(2026, 5, 3, tzinfo=UTC)
    assert got["job_run_started_at"] == datetime(2026, 5, 3, 10, 11, 12, 250000, tzinfo=UTC)
    assert got["job_run_stopped_at"] == datetime(2026, 5, 3, 10, 0, tzinfo=UTC)
    assert got["job_run_queued_at"] == datetime(2026, 5, 3, 10, 0, tzinfo=UTC)
    assert got["export_window_start"] == W_START and got["export_window_end"] == W_END
    assert got["extracted_at"] == EXTRACTED
    assert got["extra_columns"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Y", True),
        ("N", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
    ],
)
def test_flag_spellings(tmp_path: Path, text: str, expected: bool) -> None:
    r = row("j1", IS_WORKFLOW_SUCCESSFUL=text, IS_UNREGISTERED_USER=text)
    _, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", list(CSV_COLUMNS), [r]))
    assert df.row(0, named=True)["is_workflow_successful"] is expected
    assert df.row(0, named=True)["is_unregistered_user"] is expected


def test_unknown_column_kept_as_json_and_reported(tmp_path: Path) -> None:
    header = [*CSV_COLUMNS[:10], "IS_DEFAULT_BRANCH", *CSV_COLUMNS[10:]]
    r = row("j1") | {"IS_DEFAULT_BRANCH": "Y"}
    stats, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", header, [r]))
    assert stats.unknown_columns == {"IS_DEFAULT_BRANCH"}
    assert json.loads(df.row(0, named=True)["extra_columns"]) == {"IS_DEFAULT_BRANCH": "Y"}
    assert "is_default_branch" not in df.columns


def test_missing_required_column_is_a_data_error_naming_column_and_part(tmp_path: Path) -> None:
    header = [c for c in CSV_COLUMNS if c != "TOTAL_CREDITS"]
    part = write_part(tmp_path / "part-0007.csv.gz", header, [row("j1")])
    with pytest.raises(DataError, match=r"part-0007\.csv\.gz.*TOTAL_CREDITS"):
        merge(tmp_path, part)
    assert not (tmp_path / "out.parquet").exists()


def test_missing_optional_column_is_null_and_reported(tmp_path: Path) -> None:
    header = [c for c in CSV_COLUMNS if c != "DLC_CREDITS"]
    stats, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", header, [row("j1")]))
    assert stats.missing_optional_columns == {"DLC_CREDITS"}
    assert df.row(0, named=True)["dlc_credits"] is None


def test_malformed_rows_are_quarantined_with_line_reason_and_counted(tmp_path: Path) -> None:
    header = list(CSV_COLUMNS)
    good = [row("j1"), row("j2")]
    full = ",".join(row("j9")[c] for c in header)
    lines = [
        ",".join(row("j3")[c] for c in header[:20]),  # line 4: too few fields
        full + ",extra,fields",  # line 5: too many fields
        ",".join(row("j4", TOTAL_CREDITS="twelve")[c] for c in header),  # line 6
        ",".join(row("j5", JOB_RUN_STARTED_AT="yesterday")[c] for c in header),  # line 7
        ",".join(row("j6", IS_WORKFLOW_SUCCESSFUL="maybe")[c] for c in header),  # line 8
        ",".join(row("", PARALLELISM="3")[c] for c in header),  # line 9: no JOB_ID
        ",".join(row("j7", PARALLELISM="2.5")[c] for c in header),  # line 10
    ]
    stats, df, q = merge(tmp_path, write_part(tmp_path / "p.csv.gz", header, good, lines))
    assert sorted(df.get_column("job_id").to_list()) == ["j1", "j2"]
    assert stats.quarantined == 7 == q.height
    by_line = {r["line_number"]: r for r in q.iter_rows(named=True)}
    assert set(by_line) == {4, 5, 6, 7, 8, 9, 10}
    assert by_line[4]["reason"] == "expected 48 fields, got 20"
    assert by_line[5]["reason"] == "expected 48 fields, got 50"
    assert by_line[6]["reason"] == "unparseable credit in TOTAL_CREDITS"
    assert by_line[7]["reason"] == "unparseable timestamp in JOB_RUN_STARTED_AT"
    assert by_line[8]["reason"] == "unparseable flag in IS_WORKFLOW_SUCCESSFUL"
    assert by_line[9]["reason"] == "missing JOB_ID"
    assert by_line[10]["reason"] == "unparseable int in PARALLELISM"
    assert by_line[5]["raw_line"] == full + ",extra,fields"
    assert all(r["part"] == "p.csv.gz" for r in by_line.values())
    assert stats.quarantine_reasons["wrong field count"] == 2


def test_quoted_field_with_comma_is_not_malformed(tmp_path: Path) -> None:
    header = list(CSV_COLUMNS)
    r = row("j1", WORKFLOW_NAME='"build, test and deploy"')
    stats, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", header, [r]))
    assert stats.quarantined == 0
    assert df.row(0, named=True)["workflow_name"] == "build, test and deploy"


def test_empty_last_value_is_not_mistaken_for_a_short_row(tmp_path: Path) -> None:
    header = [c for c in CSV_COLUMNS if c != "VCS_BRANCH"] + ["VCS_BRANCH"]
    stats, df, _ = merge(tmp_path, write_part(tmp_path / "a.csv.gz", header, [row("j1", VCS_BRANCH="")]))
    assert stats.quarantined == 0 and stats.rows == 1
    assert df.row(0, named=True)["vcs_branch"] == ""


def test_header_only_and_empty_parts_are_valid(tmp_path: Path) -> None:
    a = write_part(tmp_path / "a.csv.gz", list(CSV_COLUMNS))
    b = tmp_path / "b.csv.gz"
    b.write_bytes(gzip.compress(b""))
    c = write_part(tmp_path / "c.csv.gz", list(CSV_COLUMNS), [row("j1")])
    stats, df, q = merge(tmp_path, a, b, c)
    assert (stats.parts, stats.rows, stats.quarantined, df.height, q.height) == (3, 1, 0, 1, 0)


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    p = write_part(
        tmp_path / "a.csv.gz", list(CSV_COLUMNS), [row("j1")], ["", ",".join(row("j2")[c] for c in CSV_COLUMNS)]
    )
    stats, df, q = merge(tmp_path, p)
    assert stats.rows == 2 and stats.blank_lines == 1 and q.height == 0


def test_duplicate_job_ids_are_dropped_first_wins(tmp_path: Path) -> None:
    header = list(CSV_COLUMNS)
    a = write_part(tmp_path / "a.csv.gz", header, [row("j1", JOB_NAME="first"), row("j2"), row("j1", JOB_NAME="again")])
    b = write_part(tmp_path / "b.csv.gz", header[::-1], [row("j2", JOB_NAME="later"), row("j3")])
    stats, df, _ = merge(tmp_path, a, b)
    assert df.get_column("job_id").to_list() == ["j1", "j2", "j3"]
    assert df.filter(pl.col("job_id") == "j1").get_column("job_name").item() == "first"
    assert stats.duplicates == 2


def test_truncated_gzip_is_detected(tmp_path: Path) -> None:
    good = write_part(tmp_path / "a.csv.gz", list(CSV_COLUMNS), [row(f"j{i}") for i in range(200)])
    assert check_gzip(good) > 0
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[:-9])
    with pytest.raises(DataError, match="cut.csv.gz"):
        check_gzip(cut)
    corrupt = tmp_path / "bad.csv.gz"
    data = bytearray(good.read_bytes())
    data[-6] ^= 0xFF  # the CRC/size trailer
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DataError):
        check_gzip(corrupt)


def test_timestamp_layouts() -> None:
    s = pl.Series(
        [
            "2026-05-01 10:00:00",
            "2026-05-01 10:00:00.123",
            "2026-05-01T10:00:00Z",
            "2026-05-01T12:00:00+02:00",
            "2026-05-01",
            None,
            "nope",
        ]
    )
    got = parse_timestamps(s).to_list()
    ten = datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert got == [
        ten,
        datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
        ten,
        ten,
        datetime(2026, 5, 1, tzinfo=UTC),
        None,
        None,
    ]
