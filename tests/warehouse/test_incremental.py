"""Incremental builds over several simulated nights equal one full build, table by table.

The `tiny` simulator's history is landed night by night as the nightly flow lands it: each
night the usage export, test results and workflow runs of the days since the previous night
plus an overlap (late rows, re-exported windows), then the warehouse is built on a copy of
the previous night's file. After the last night, a full build of the same lake must hold the
same rows in every table (EXCEPT ALL both ways; doubles rounded to 1e-6, as sums of floats
depend on the order they are added in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import truth_lake
from truth_lake import project_rows, usage_rows, workflow_run_rows

from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.warehouse import Lake, build_warehouse

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LATE_TESTS = timedelta(days=7)
VOLATILE = {"warehouse_meta": ("built_at", "build_started_at")}


def _between(table: pa.Table, column: str, start: datetime, end: datetime) -> pa.Table:
    col = table.column(column)
    return table.filter(
        pc.and_(pc.greater_equal(col, pa.scalar(start, col.type)), pc.less(col, pa.scalar(end, col.type)))
    )


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        f"where table_catalog = '{db}' and table_schema = 'main' order by table_name, ordinal_position"
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def _differences(inc: str, full: str) -> dict[str, tuple[int, int]]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{inc}' as inc (read_only)")
    con.execute(f"attach '{full}' as full_build (read_only)")
    inc_tables, full_tables = _tables(con, "inc"), _tables(con, "full_build")
    assert inc_tables == full_tables
    diffs = {}
    for table, columns in full_tables.items():
        cols = ", ".join(
            f'round("{c}", 6)' if t in ("DOUBLE", "FLOAT") else f'"{c}"'
            for c, t in columns
            if c not in VOLATILE.get(table, ())
        )
        a = f"select {cols} from inc.main.{table}"
        b = f"select {cols} from full_build.main.{table}"
        only_inc = con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0]
        only_full = con.execute(f"select count(*) from ({b} except all {a})").fetchone()[0]
        if only_inc or only_full:
            diffs[table] = (only_inc, only_full)
    con.close()
    return diffs


@pytest.mark.slow
def test_nightly_incremental_builds_equal_one_full_build(tmp_path):
    sim = Simulator(SimConfig(seed=7, preset="tiny", now=NOW))
    truth = sim.truth()
    usage = usage_rows(sim, truth.job_runs())
    tests = truth_lake.test_rows(truth.test_runs())
    runs = workflow_run_rows(truth.workflow_runs())
    lake = Lake(tmp_path / "lake")
    db = tmp_path / "incremental.duckdb"
    start, end = sim.history.start, sim.history.end + timedelta(days=1)
    nights = [end - timedelta(days=d) for d in (9, 6, 3, 1, 0)]
    previous = start
    for i, night in enumerate(nights):
        since = max(start, previous - timedelta(days=2))  # the nightly's overlap
        lake.land("usage_job_runs", _between(usage, "job_run_started_at", since, night), window=(since, night))
        # Test results land a week late (probed later than their jobs ran): days outside
        # the usage overlap change, and the flaky flags of their job runs with them.
        lake.land("job_tests", _between(tests, "job_started_at", max(start, previous - LATE_TESTS), night - LATE_TESTS))
        lake.land("workflow_runs", _between(runs, "created_at", since, night))
        if i == 0:
            lake.land("projects", project_rows(sim))
        result = build_warehouse(lake, db, docs=False)
        assert result.failed_tests == [], [t.name for t in result.failed_tests]
        assert result.incremental == (i > 0)
        if i > 0:  # only the days the late test results reach (minus the lookback) are rebuilt
            assert result.rebuild_from == (previous - LATE_TESTS).date() - timedelta(days=3)
        previous = night
    full = tmp_path / "full.duckdb"
    assert build_warehouse(lake, full, docs=False).incremental is False
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from fct_job_runs").fetchone()[0] == usage.num_rows
        landed = _between(tests, "job_started_at", start, end - LATE_TESTS).num_rows
        assert con.execute("select count(*) from fct_test_runs").fetchone()[0] == landed > 0
        assert con.execute("select count(*) from fct_job_runs where is_rerun").fetchone()[0] > 0
        assert con.execute("select count(*) from fct_job_runs where is_flaky_failure").fetchone()[0] > 0
    assert _differences(str(db), str(full)) == {}
