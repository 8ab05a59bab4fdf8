"""Workflow runs from the usage export (13-month history) against the simulator's ground truth.

Insights workflow runs are landed for the last 20 days only (as after a first pull capped by
Insights' retention); the usage export covers the whole history. Recoveries and MTTR over the
whole history, and the reconciliation of the two sources, must equal what the truth implies
under metrics.md's reading ("Workflow runs from the usage export")."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import duckdb
import pytest
from sql_helpers import rows
from truth_lake import land_truth

from circleci_analytics.simulator.truth import compute_recoveries
from circleci_analytics.warehouse import Lake, build_warehouse

INSIGHTS_DAYS = 20


@pytest.fixture(scope="module")
def insights_from(tiny_sim) -> datetime:
    return tiny_sim.history.end.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=INSIGHTS_DAYS)


@pytest.fixture(scope="module")
def hq(tiny_sim, insights_from, tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    lake = Lake(root / "lake")
    land_truth(lake, tiny_sim, insights=False, insights_from=insights_from)
    result = build_warehouse(lake, root / "warehouse.duckdb")
    assert result.failed_tests == []
    con = duckdb.connect(str(result.db_path), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    yield lambda sql: rows(con, sql)
    con.close()


@pytest.fixture(scope="module")
def sourced(tiny_truth, insights_from):
    return tiny_truth.sourced_workflow_runs(insights_from)


def test_every_run_of_the_history_with_its_source(hq, sourced, insights_from):
    expected = {r.id: r for runs in sourced.values() for r in runs}
    got = {r["workflow_id"]: r for r in hq("select * from fct_workflow_runs")}
    assert set(got) == set(expected)
    assert Counter(r["source"] for r in got.values()) == Counter(r.source for r in expected.values())
    assert {"usage_export", "both"} <= {r["source"] for r in got.values()}
    for wid, e in expected.items():
        g = got[wid]
        outcome = "success" if e.status == "success" else "failure" if e.status in ("failed", "error") else "other"
        assert (g["outcome"], g["created_at"], g["stopped_at"], g["branch"]) == (
            outcome,
            e.created_at,
            e.stopped_at,
            e.branch,
        ), wid
    # history reaches back past Insights' days to the first exported day
    (r,) = hq("select min(run_date) as first, min(run_date) filter (where source <> 'usage_export') as insights_first "
              "from fct_workflow_runs")  # fmt: skip
    assert r["first"] < insights_from.date() <= r["insights_first"]


def test_recoveries_over_the_whole_history_equal_truth(hq, sourced, tiny_truth):
    expected_recoveries = [rec for slug, runs in sourced.items() for rec in compute_recoveries(runs, slug)]
    expected = {(r.first_failed_run_id, r.recovered_run_id, r.seconds, r.failed_runs) for r in expected_recoveries}
    got = {
        (r["first_failed_run_id"], r["recovered_run_id"], r["recovery_seconds"], r["failed_runs"])
        for r in hq("select * from fct_recoveries")
    }
    assert got == expected
    # MTTR per week, back to the first exported day
    mttr = tiny_truth.mttr_weekly(expected_recoveries)
    got_mttr = {
        (r["project_slug"], r["workflow_name"], r["branch"], r["week_start"]): r
        for r in hq("select * from fct_mttr_weekly")
    }
    assert set(got_mttr) == set(mttr)
    for k, e in mttr.items():
        assert got_mttr[k]["recoveries"] == e["recoveries"]
        assert got_mttr[k]["mttr_mean_seconds"] == pytest.approx(e["mean_seconds"])
        assert got_mttr[k]["mttr_median_seconds"] == e["median_seconds"]
    # and it differs from an Insights-only history: the export adds recoveries
    insights_only = [rec for slug, runs in sourced.items()
                     for rec in compute_recoveries([r for r in runs if r.source != "usage_export"], slug)]  # fmt: skip
    assert len([r for r in expected_recoveries if r.recovered_at]) > len([r for r in insights_only if r.recovered_at])


def test_health_weekly_counts_export_runs(hq, sourced):
    acc: Counter = Counter()
    for runs in sourced.values():
        for r in runs:
            week = r.created_at.date() - timedelta(days=r.created_at.weekday())
            acc[(week, r.status in ("failed", "error"))] += 1
    got = hq(
        "select week_start, sum(runs) as runs, sum(failed_runs) as failed from fct_workflow_health_weekly group by all"
    )
    assert {r["week_start"]: r["runs"] for r in got} == {w: acc[(w, True)] + acc[(w, False)] for w, _ in acc}
    assert {r["week_start"]: r["failed"] for r in got} == {w: acc[(w, True)] for w, _ in acc}


def test_reconciliation_counts_equal_truth(hq, tiny_truth, insights_from):
    covered = [(p, w) for p, w in tiny_truth.workflows() if w.created_at >= insights_from]
    with_jobs = [(p, w) for p, w in covered if w.executed_jobs]
    (r,) = hq("""select sum(insights_runs) as insights, sum(export_runs) as export, sum(matched_runs) as matched,
                        sum(insights_only_runs) as insights_only, sum(export_only_runs) as export_only,
                        sum(outcome_agreements) as agree, sum(outcome_disagreements) as disagree,
                        sum(canceled_as_failure_runs) as canceled, sum(stop_time_agreements) as stop_ok,
                        sum(stop_time_disagreements) as stop_bad
                 from fct_workflow_runs_reconciliation""")
    canceled = sum(w.status == "canceled" for _, w in with_jobs)
    assert r["insights"] == len(covered)
    assert r["matched"] == r["export"] == len(with_jobs)
    assert r["insights_only"] == len(covered) - len(with_jobs)
    assert r["export_only"] == 0
    # the export flags every non-success as unsuccessful: only canceled runs disagree with Insights
    assert r["canceled"] == r["disagree"] == canceled > 0
    assert r["agree"] == len(with_jobs) - canceled
    assert (r["stop_ok"], r["stop_bad"]) == (len(with_jobs), 0)
