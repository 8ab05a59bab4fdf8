"""fct_recoveries built night after night when a run's outcome changes between nights.

A run the usage export carries but Insights has not landed yet reads as a failure (the export
cannot tell failed from canceled). When Insights lands it the next night as canceled, the
streak it opened is gone: the incremental build must drop it, and equal a full build of the
same lake (`EXCEPT ALL` both ways), down to MTTR.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sql_helpers import rows
from truth_lake import project_rows, usage_rows, workflow_run_rows

from circleci_analytics.warehouse import Lake, build_warehouse

#: Insights workflow runs of the last days land only on the second night (as after an outage
#: night); the usage export has every day from the first.
LATE_DAYS = 14
COMPARED = ("fct_workflow_runs", "fct_recoveries", "fct_mttr_weekly", "fct_mttr_reconciliation")


def _only_in(db: str, other: str, table: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{db}' as a (read_only)")
    con.execute(f"attach '{other}' as b (read_only)")
    try:
        return con.execute(f"select * from a.main.{table} except all select * from b.main.{table}").fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_a_failure_that_turns_out_canceled_ends_its_streak_as_a_full_build_does(tiny_sim, tmp_path):
    truth = tiny_sim.truth()
    h = tiny_sim.history
    cut = h.end - timedelta(days=LATE_DAYS)
    runs = truth.workflow_runs()
    created = runs.column("created_at")
    late = pc.greater_equal(created, pa.scalar(cut, created.type))
    canceled = {r["id"] for r in runs.filter(pc.equal(runs.column("status"), "canceled")).to_pylist()}

    lake = Lake(tmp_path / "lake")
    lake.land("usage_job_runs", usage_rows(tiny_sim, truth.job_runs()), window=(h.start, h.end + timedelta(days=1)))
    lake.land("projects", project_rows(tiny_sim))
    lake.land("workflow_runs", workflow_run_rows(runs.filter(pc.invert(late))))
    nightly = tmp_path / "nightly.duckdb"
    build_warehouse(lake, nightly)
    con = duckdb.connect(str(nightly), read_only=True)
    opened = {r["first_failed_run_id"] for r in rows(con, "select first_failed_run_id from fct_recoveries")}
    con.close()
    # the first night: a canceled run known from the export only opened a streak
    assert opened & canceled

    lake.land("workflow_runs", workflow_run_rows(runs.filter(late)))
    second = build_warehouse(lake, nightly)
    assert second.incremental and second.rebuild_from <= cut.date()
    full = build_warehouse(lake, tmp_path / "full.duckdb")
    for table in COMPARED:
        assert _only_in(str(nightly), str(full.db_path), table) == [], table
        assert _only_in(str(full.db_path), str(nightly), table) == [], table
    con = duckdb.connect(str(nightly), read_only=True)
    assert (
        not {r["first_failed_run_id"] for r in rows(con, "select first_failed_run_id from fct_recoveries")} & canceled
    )
    con.close()
