"""Every mart's figures against the simulator's ground truth (`tiny` preset, seed 7)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from circleci_analytics import RESOURCE_CLASSES_CSV

AS_OF = date(2026, 5, 31)
PRICE = Decimal("0.0006")
TYPES = ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges", "total")


def test_build_passes_all_data_tests(tiny_build):
    assert tiny_build.failed_tests == []
    assert len(tiny_build.tests) > 50
    assert tiny_build.as_of_date == AS_OF


def test_job_runs_and_spend_totals(q, tiny_truth):
    truth = tiny_truth.job_runs()
    (r,) = q("select count(*) as n, sum(total_credits) as credits, sum(total_usd) as usd from fct_job_runs")
    assert r["n"] == truth.num_rows
    total = sum(truth.column("total_credits").to_pylist(), Decimal(0))
    assert r["credits"] == total
    assert r["usd"] == total * PRICE


def test_credit_spend_daily_equals_truth_per_type(q, tiny_truth):
    expected = tiny_truth.credits_daily()
    got = {}
    for r in q(
        "select spend_date, project_slug, executor, resource_class, "
        + ", ".join(f"sum({t}_credits) as {t}" for t in TYPES)
        + " from fct_credit_spend_daily group by all"
    ):
        for t in TYPES:
            got[(r["spend_date"], r["project_slug"], r["executor"], r["resource_class"], t)] = r[t]
    assert got == expected
    assert all(isinstance(v, Decimal) for v in got.values())


def test_credit_spend_daily_grain_includes_branch_and_workflow(q, tiny_truth):
    truth = tiny_truth.job_runs().to_pylist()
    expected = defaultdict(Decimal)
    for j in truth:
        expected[(j["job_run_date"], j["project_slug"], j["workflow_name"], j["job_name"], j["vcs_branch"])] += j[
            "total_credits"
        ]
    got = {
        (r["spend_date"], r["project_slug"], r["workflow_name"], r["job_name"], r["branch"]): r["total_credits"]
        for r in q("select spend_date, project_slug, workflow_name, job_name, branch, sum(total_credits) as total_credits "
                   "from fct_credit_spend_daily group by all")
    }  # fmt: skip
    assert got == dict(expected)


def test_waste_equals_truth(q, tiny_truth):
    w = tiny_truth.waste()
    (r,) = q("select sum(failed_credits) as failed, sum(rerun_credits) as rerun, "
             "sum(flaky_failure_credits) as flaky, sum(flaky_failure_seconds) as flaky_seconds, "
             "sum(failed_usd) as failed_usd from fct_waste_daily")  # fmt: skip
    assert r["failed"] == w["failed_credits"]
    assert r["rerun"] == w["rerun_credits"]
    assert r["flaky"] == w["flaky_credits"]
    assert r["flaky_seconds"] == w["flaky_seconds"]
    assert r["failed_usd"] == w["failed_credits"] * PRICE
    assert w["flaky_credits"] > 0 and w["rerun_credits"] > 0


def test_flaky_job_failures_equal_truth(q, tiny_truth):
    expected = {j.id for j in tiny_truth.flaky_job_failures()}
    got = {r["job_id"] for r in q("select job_id from fct_job_runs where is_flaky_failure")}
    assert got == expected and expected


def test_flaky_tests_equal_truth(q, tiny_truth):
    expected = tiny_truth.flaky_tests()
    got = {
        (r["project_slug"], r["job_name"], r["classname"], r["test_name"]): r
        for r in q("select * from fct_flaky_tests")
    }
    assert set(got) == set(expected) and expected
    for key, e in expected.items():
        g = got[key]
        assert g["times_flaked"] == e["times_flaked"], key
        assert g["commits_flaked"] == e["commits_flaked"], key
        assert g["first_flake_at"] == e["first_flake_at"], key
        assert g["last_flake_at"] == e["last_flake_at"], key
        assert g["currently_flaky"] == e["currently_flaky"], key


def test_flaky_tests_flip_rate_and_shares(q, tiny_truth):
    by_test = defaultdict(list)
    for t in tiny_truth.test_runs().to_pylist():
        if t["result"] != "skipped":
            by_test[(t["project_slug"], t["job_name"], t["classname"], t["name"])].append(
                (t["job_started_at"], t["job_number"], t["result"] in ("failure", "error"))
            )
    for r in q("select * from fct_flaky_tests"):
        results = [f for _, _, f in sorted(by_test[(r["project_slug"], r["job_name"], r["classname"], r["test_name"])])]
        flips = sum(a != b for a, b in zip(results, results[1:]))
        assert r["runs"] == len(results)
        assert r["flips"] == flips
        assert r["flip_rate"] == pytest.approx(flips / (len(results) - 1))
        assert r["flip_rate_smoothed"] == pytest.approx((flips + 1) / (len(results) + 1))
    # Shares of flaky job failures add up to the flaky waste.
    (s,) = q("select sum(credits_wasted) as c from fct_flaky_tests")
    assert abs(s["c"] - tiny_truth.waste()["flaky_credits"]) < Decimal("0.0001")


def test_flaky_weekly_sums_to_times_flaked(q):
    (r,) = q("select (select sum(times_flaked) from fct_flaky_tests_weekly) as weekly, "
             "(select sum(times_flaked) from fct_flaky_tests) as total")  # fmt: skip
    assert r["weekly"] == r["total"] > 0


def test_flaky_vs_circleci(q, tiny_truth):
    got = q("select * from fct_flaky_tests_vs_circleci")
    assert got
    both = [r for r in got if r["agreement"] == "both"]
    assert both
    # Inside Insights' retention the simulator's list follows our reading: counts agree.
    assert all(r["times_flaked_diff"] == 0 for r in both)
    current = {k for k, v in tiny_truth.flaky_tests().items() if v["currently_flaky"]}
    assert {
        (r["project_slug"], r["job_name"], r["classname"], r["test_name"]) for r in got if r["in_warehouse"]
    } == current


def test_recoveries_equal_truth(q, tiny_truth):
    expected = {
        (r.first_failed_run_id, r.recovered_run_id, r.seconds, r.failed_runs, r.branch) for r in tiny_truth.recoveries()
    }
    got = {
        (r["first_failed_run_id"], r["recovered_run_id"], r["recovery_seconds"], r["failed_runs"], r["branch"])
        for r in q("select * from fct_recoveries")
    }
    assert got == expected
    opened = q("select * from fct_recoveries where is_open")
    assert all(r["open_age_seconds"] > 0 and r["recovery_seconds"] is None for r in opened)


def test_mttr_weekly_equals_truth_to_the_second(q, tiny_truth):
    expected = tiny_truth.mttr_weekly()
    got = {
        (r["project_slug"], r["workflow_name"], r["branch"], r["week_start"]): r
        for r in q("select * from fct_mttr_weekly")
    }
    assert set(got) == set(expected) and expected
    for k, e in expected.items():
        assert got[k]["recoveries"] == e["recoveries"]
        assert round(got[k]["mttr_mean_seconds"], 6) == round(e["mean_seconds"], 6)
        assert got[k]["mttr_median_seconds"] == e["median_seconds"]


def test_mttr_reconciles_with_insights(q):
    got = q("select * from fct_mttr_reconciliation")
    assert got and any(r["insights_mttr_seconds"] is not None for r in got)
    assert all(r["matches"] for r in got), [r for r in got if not r["matches"]]


def test_workflow_runs_and_health(q, tiny_truth):
    truth = tiny_truth.workflow_runs().to_pylist()
    (n,) = q("select count(*) as n, count(*) filter (where is_rerun) as reruns from fct_workflow_runs")
    assert n["n"] == len(truth)
    assert n["reruns"] == sum(1 for w in truth if w["rerun_of"] is not None)
    acc = defaultdict(lambda: [0, 0, 0, []])
    for w in truth:
        week = w["created_at"].date() - timedelta(days=w["created_at"].weekday())
        a = acc[(w["project_slug"], w["workflow_name"], w["branch"], week)]
        a[0] += 1
        a[1] += w["status"] == "success"
        a[2] += w["status"] in ("failed", "error")
        if w["status"] == "success":
            a[3].append(w["duration_seconds"])
    got = {
        (r["project_slug"], r["workflow_name"], r["branch"], r["week_start"]): r
        for r in q("select * from fct_workflow_health_weekly where runs > 0")
    }
    assert set(got) == set(acc)
    for k, (runs, ok, bad, durations) in acc.items():
        g = got[k]
        assert (g["runs"], g["successful_runs"], g["failed_runs"]) == (runs, ok, bad)
        assert g["success_rate"] == (pytest.approx(ok / (ok + bad)) if ok + bad else None)
        assert g["throughput_runs_per_day"] == pytest.approx(runs / 7)
        if durations:
            assert g["duration_p50_seconds"] == pytest.approx(statistics.median(durations))


def test_anomalies_equal_truth(q, tiny_truth):
    expected = tiny_truth.anomalies()
    got = {(r["project_slug"], r["spend_date"]) for r in q("select * from fct_credit_anomalies where is_anomaly")}
    assert got == expected and expected
    # Every project-day of the lake is present (zero-filled).
    (r,) = q("select count(*) as n, count(distinct spend_date) as days from fct_credit_anomalies")
    days, projects = tiny_truth.history.days, len(tiny_truth.projects)
    assert r["days"] == days and r["n"] == days * projects


def test_right_sizing_p95_equals_truth(q, tiny_truth):
    expected = tiny_truth.right_sizing_p95()
    got = {
        (r["project_slug"], r["job_name"], r["executor"], r["resource_class"]): r
        for r in q("select * from fct_right_sizing where runs_with_utilisation > 0")
    }
    assert set(got) == set(expected)
    for k, (cpu, ram, n) in expected.items():
        assert got[k]["runs_with_utilisation"] == n
        assert got[k]["p95_max_cpu_pct"] == pytest.approx(cpu)
        assert got[k]["p95_max_ram_pct"] == pytest.approx(ram)


def test_right_sizing_recommendation(q):
    import csv

    classes = list(csv.DictReader(open(RESOURCE_CLASSES_CSV)))
    got = q("select * from fct_right_sizing where runs_with_utilisation > 0")
    assert any(r["recommendation"] == "downsize" for r in got)  # the planted over-provisioned lint job
    for r in got:
        cur = next(c for c in classes if c["executor"] == r["executor"] and c["resource_class"] == r["resource_class"])
        need_cpu = r["p95_max_cpu_pct"] / 100 * float(cur["vcpus"]) / 0.8
        need_ram = r["p95_max_ram_pct"] / 100 * float(cur["ram_gb"]) / 0.8
        family = [c for c in classes if c["family"] == cur["family"]]
        covering = [c for c in family if float(c["vcpus"]) >= need_cpu and float(c["ram_gb"]) >= need_ram]
        best = min(covering, key=lambda c: (float(c["credits_per_minute"]), float(c["vcpus"]))) if covering else max(
            family, key=lambda c: float(c["credits_per_minute"]))  # fmt: skip
        assert r["recommended_resource_class"] == best["resource_class"], r
        saving = (float(cur["credits_per_minute"]) - float(best["credits_per_minute"])) * r["billed_minutes_30d"]
        assert r["projected_monthly_savings_credits"] == pytest.approx(saving)


def test_month_to_date_and_forecast(q, tiny_truth):
    by_pd = tiny_truth.credits_by_project_day()
    month_start, days_left = date(2026, 5, 1), 0
    got = {
        r["project_slug"]: r
        for r in q(  # per project x team: the projects' figures are their teams' sums
            "select project_slug, any_value(as_of_date) as as_of_date, any_value(days_left) as days_left, "
            "sum(mtd_credits) as mtd_credits, sum(trailing_7d_credits) as trailing_7d_credits, "
            "sum(forecast_credits) as forecast_credits from fct_credit_month_to_date group by project_slug"
        )
    }
    assert set(got) == {p for p, _ in by_pd}
    for slug, r in got.items():
        mtd = sum((v for (p, d), v in by_pd.items() if p == slug and month_start <= d <= AS_OF), Decimal(0))
        t7 = sum(
            (v for (p, d), v in by_pd.items() if p == slug and AS_OF - timedelta(days=6) <= d <= AS_OF), Decimal(0)
        )
        assert r["mtd_credits"] == mtd
        assert r["trailing_7d_credits"] == t7
        assert r["days_left"] == days_left and r["as_of_date"] == AS_OF
        assert r["forecast_credits"] == mtd  # the last day of the month: nothing left to forecast


def test_forecast_mid_month(tiny_sim, tiny_truth, tmp_path):
    """With as_of_date = 2026-05-20 the forecast adds 11 days at the trailing 7-day mean."""
    from truth_lake import land_truth

    from circleci_analytics.warehouse import Lake, build_warehouse

    lake = Lake(tmp_path / "lake")
    land_truth(lake, tiny_sim, insights=False)
    as_of = date(2026, 5, 20)
    result = build_warehouse(lake, tmp_path / "w.duckdb", as_of_date=as_of, price_per_credit="0.001")
    import duckdb

    con = duckdb.connect(str(result.db_path), read_only=True)
    by_pd = tiny_truth.credits_by_project_day()
    for slug, mtd, forecast, usd in con.execute(
        "select project_slug, mtd_credits, forecast_credits, forecast_usd from fct_credit_month_to_date"
    ).fetchall():
        m = sum((v for (p, d), v in by_pd.items() if p == slug and date(2026, 5, 1) <= d <= as_of), Decimal(0))
        t7 = sum(
            (v for (p, d), v in by_pd.items() if p == slug and as_of - timedelta(days=6) <= d <= as_of), Decimal(0)
        )
        assert mtd == m
        assert forecast == (m + t7 * 11 / Decimal(7)).quantize(Decimal("0.000001"))
        assert usd == forecast * Decimal("0.001")
    con.close()


def test_movers_weekly(q, tiny_truth):
    acc = defaultdict(Decimal)
    for j in tiny_truth.job_runs().to_pylist():
        d = j["job_run_date"]
        acc[(d - timedelta(days=d.weekday()), j["project_slug"], j["workflow_name"])] += j["total_credits"]
    got = q("select * from fct_credit_movers_weekly")
    for r in got:
        k = (r["week_start"], r["project_slug"], r["workflow_name"])
        prev = (r["week_start"] - timedelta(days=7), r["project_slug"], r["workflow_name"])
        assert r["credits"] == acc.get(k, 0)
        assert r["previous_week_credits"] == acc.get(prev, 0)
        assert r["delta_credits"] == acc.get(k, 0) - acc.get(prev, 0)
    weeks = defaultdict(list)
    for r in got:
        weeks[r["week_start"]].append(r)
    for rs in weeks.values():
        top = min(rs, key=lambda r: r["mover_rank"])
        assert abs(top["delta_credits"]) == max(abs(r["delta_credits"]) for r in rs)


def test_credit_reconciliation(q, tiny_truth):
    runs = tiny_truth.workflow_runs().to_pylist()
    insights = defaultdict(int)
    for w in runs:
        insights[(w["project_slug"], w["workflow_name"], w["created_at"].date())] += w["credits_used"]
    got = q("select * from fct_credit_reconciliation_daily")
    assert {(r["project_slug"], r["workflow_name"], r["run_date"]): r["insights_credits"] for r in got if r["insights_workflow_runs"]} == {
        k: Decimal(v) for k, v in insights.items()
    }  # fmt: skip
    (tot,) = q("select sum(export_total_credits) as t, sum(drift_credits) as d from fct_credit_reconciliation_daily")
    assert tot["t"] == sum(tiny_truth.job_runs().column("total_credits").to_pylist(), Decimal(0))
    assert tot["d"] < 0  # Insights counts compute only, in whole credits: it is below billing
    for r in got:  # Insights credits = floor of compute credits, per workflow run
        assert -r["export_workflow_runs"] < r["compute_drift_credits"] <= 0


def test_test_runs_count(q, tiny_truth):
    (r,) = q("select count(*) as n, count(job_id) as with_job from fct_test_runs")
    assert r["n"] == tiny_truth.test_runs().num_rows
    assert r["with_job"] == r["n"]


def test_hostile_branch_round_trips(q):
    from circleci_analytics.simulator.catalog import HOSTILE_BRANCH

    (r,) = q(
        f"select count(*) as n from fct_credit_spend_daily where branch = '{HOSTILE_BRANCH.replace(chr(39), chr(39) * 2)}'"
    )
    assert r["n"] > 0


def test_run_summary_mttr_is_the_dashboard_kpi_and_equals_truth(tiny_build, q, tiny_truth):
    """The run summary's MTTR reads the dashboard's KPI query (one definition: the recoveries
    whose recovering success stopped in the 7 days to the as-of date), so both equal the truth."""
    from datetime import timedelta

    from circleci_analytics.flows.summary import warehouse_highlights

    as_of = q("select as_of_date from warehouse_meta")[0]["as_of_date"]

    def mean_recovery(first_day, last_day) -> float | None:
        seconds = [r.seconds for r in tiny_truth.recoveries()
                   if r.recovered_at is not None and first_day <= r.recovered_at.date() <= last_day]  # fmt: skip
        return sum(seconds) / len(seconds) if seconds else None

    last, previous = (
        mean_recovery(as_of - timedelta(days=6), as_of),
        mean_recovery(as_of - timedelta(days=13), as_of - timedelta(days=7)),
    )
    assert last is not None, "the fixture has recoveries in its last 7 days"
    h = warehouse_highlights(str(tiny_build.db_path))
    assert h["mttr_last_7d_seconds"] == pytest.approx(last)
    assert h.get("mttr_change_pct") == (pytest.approx((last / previous - 1) * 100) if previous else None)
