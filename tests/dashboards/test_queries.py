"""Every query file: documented, runs against a built warehouse, and agrees with the marts."""

from __future__ import annotations

import math

import polars as pl
import pytest
from expected_kpis import expected_kpis

from circleci_analytics.dashboards import PAGES, QUERY_DIR, load_queries, run_query
from circleci_analytics.dashboards.queries import QueryResult
from circleci_analytics.dashboards.spec import queries_used

pytestmark = pytest.mark.xdist_group("dashboards")

QUERIES = load_queries()


def test_every_query_file_has_a_header_and_every_spec_query_has_a_file():
    assert QUERIES, f"no query files in {QUERY_DIR}"
    for q in QUERIES.values():
        assert q.title and len(q.description) > 40, f"{q.path.name}: header must say what it shows"
    used = {name for page in PAGES for name in queries_used(page)}
    assert used <= QUERIES.keys()
    # every file except the page-header freshness query draws something
    assert QUERIES.keys() - used == {"data_freshness"}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_runs_and_returns_rows(con, name):
    result = run_query(con, QUERIES[name])
    assert result.error is None, result.error
    if name != "credit_top_movers" or result.row_count:  # movers need a complete week; tiny has four
        assert result.row_count > 0, f"{name} returned no rows on the tiny warehouse"
    assert all(len(v) == result.row_count for v in result.columns.values())


def test_missing_mart_is_reported_not_raised(tmp_path):
    import duckdb

    with duckdb.connect(str(tmp_path / "empty.duckdb")) as c:
        result = run_query(c, QUERIES["flaky_tests"])
    assert result.row_count == 0
    assert result.error and "fct_flaky_tests" in result.error


def test_kpi_parts_add_up_to_the_marts(con):
    """Summing the per-project additive parts gives the KPI computed straight from the marts."""
    expected = expected_kpis(con)

    def totals(name: str) -> dict[str, float]:
        cols = run_query(con, QUERIES[name]).columns
        return {
            k: sum(v for v in vals if v is not None)
            for k, vals in cols.items()
            if k not in ("project_slug", "org_slug", "team", "branch")
        }

    credits = totals("kpi_credits")
    assert math.isclose(credits["credits_mtd"], expected["credits_mtd"], rel_tol=1e-9)
    assert math.isclose(credits["credits_forecast"], expected["credits_forecast"], rel_tol=1e-9)
    sr = totals("kpi_success_rate")
    assert math.isclose(sr["successes_last_7d"] / sr["outcomes_last_7d"], expected["success_rate"], rel_tol=1e-9)
    mttr = totals("kpi_mttr")
    assert math.isclose(mttr["recovery_seconds_last_7d"] / mttr["recoveries_last_7d"], expected["mttr"], rel_tol=1e-9)
    assert totals("kpi_flaky_tests")["flaky_tests_now"] == expected["flaky_tests"]


def test_credit_breakdowns_agree_with_each_other(con):
    """By project, by resource class and by credit type are three cuts of the same credits."""
    sums = {
        name: sum(run_query(con, QUERIES[name]).columns["credits"])
        for name in ("credits_by_project", "credits_by_resource_class", "credits_by_credit_type")
    }
    total = float(con.execute("select sum(total_credits) from fct_credit_spend_daily").fetchone()[0])
    for name, value in sums.items():
        assert math.isclose(value, total, rel_tol=1e-9), name


def test_branch_rollup_rows_cover_all_branches(con):
    cols = run_query(con, QUERIES["duration_weekly"]).columns
    rollups = [i for i, a in enumerate(cols["all_branches"]) if a]
    per_branch = [i for i, a in enumerate(cols["all_branches"]) if not a]
    assert rollups and per_branch
    runs = lambda idx: sum(cols["successful_runs"][i] for i in idx)  # noqa: E731
    assert runs(rollups) == runs(per_branch)


def test_text_columns_are_dictionary_encoded_and_round_trip():
    values = ["a", "b", None, "a"] * 10
    encoded = QueryResult("x", pl.DataFrame({"c": values, "n": list(range(40))})).as_json()["columns"]
    assert encoded["n"] == list(range(40))
    assert [None if k is None else encoded["c"]["dict"][k] for k in encoded["c"]["codes"]] == values


def test_week_over_week_is_covered_only_where_data_reaches_back(con, week_of_tests_warehouse_path):
    """previous_covered: whether the data reaches back to the period a KPI compares with."""
    import duckdb

    def covered(c, name: str) -> set:
        return set(run_query(c, QUERIES[name]).columns["previous_covered"])

    for name in ("kpi_credits", "kpi_success_rate", "kpi_mttr", "kpi_flaky_tests"):
        assert covered(con, name) == {True}, name
    with duckdb.connect(str(week_of_tests_warehouse_path), read_only=True) as short:
        # a week of test results: "flaky a week ago" (the 14 days to as_of-7) has no data
        assert covered(short, "kpi_flaky_tests") == {False}
        assert covered(short, "kpi_credits") == covered(short, "kpi_success_rate") == {True}


def test_branch_activity_lists_the_most_active_branches_of_each_project(con):
    """Each project's 20 most active branches (credits of the last 30 days, then runs, then
    latest activity) and its default branch: never every branch of a large organisation."""
    cols = run_query(con, QUERIES["branch_activity"]).columns
    got = set(zip(cols["project_slug"], cols["branch"]))
    marts = con.execute("select project_slug, branch, credits_30d, workflow_runs_30d, last_activity_at, "
                        "is_default_branch from fct_branch_activity").fetchall()  # fmt: skip
    by_project: dict[str, list] = {}
    for row in marts:
        by_project.setdefault(row[0], []).append(row)
    expected = set()
    for slug, rows in by_project.items():
        rows.sort(key=lambda r: (-r[2], -r[3], -(r[4].timestamp() if r[4] else float("-inf")), r[1] or ""))
        expected |= {(slug, r[1]) for r in rows[:20]} | {(slug, r[1]) for r in rows if r[5]}
    assert got == expected and expected


def test_test_performance_ranks_each_list_within_each_project(con):
    cols = run_query(con, QUERIES["test_performance"]).columns
    got = pl.DataFrame({k: cols[k] for k in ("project_slug", "slow_p95_seconds", "failed_count")})
    for _, part in got.group_by("project_slug"):
        assert part["slow_p95_seconds"].drop_nulls().len() <= 10
        assert part["failed_count"].drop_nulls().len() <= 10
    (slowest,) = con.execute("select max(p95_duration_seconds) from fct_test_performance where is_slowest").fetchone()
    assert max(v for v in got["slow_p95_seconds"].to_list() if v is not None) == pytest.approx(slowest)
