"""Team ownership in the marts against the simulator's ground truth, with the rules
(`truth_lake.TEAMS`) applied independently in Python (`fnmatch`, first match wins)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from truth_lake import TEAMS
from truth_lake import team_of as owner

from circleci_analytics.simulator.truth import centi
from circleci_analytics.teams import UNASSIGNED

MONTH = (date(2026, 5, 1), date(2026, 5, 31))  # the month of the tiny build's as-of date
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def org_of(project: str) -> str:
    return "/".join(project.split("/")[:2])


def test_the_rules_split_the_fixture_several_ways(tiny_truth):
    """The fixture exercises every case: job rules, project rules, and unassigned rows."""
    teams = {owner(r["project_slug"], r["job_name"]) for r in tiny_truth.job_runs().to_pylist()}
    assert teams == {"release", "web", "quality", UNASSIGNED}


def test_ownership_model_equals_the_rules(q, tiny_truth):
    got = {(r["project_slug"], r["job_name"]): r["team"] for r in q("select * from dim_ownership")}
    jobs = {(r["project_slug"], r["job_name"]) for r in tiny_truth.job_runs().to_pylist()}
    projects = {(p, None) for p, _ in jobs}
    assert jobs | projects <= got.keys()
    assert got == {(p, j): owner(p, j) for p, j in got}
    assert {r["team"]: r["rule_order"] for r in q("select * from dim_teams")} == {
        **{rule["name"]: i + 1 for i, rule in enumerate(TEAMS)},
        UNASSIGNED: len(TEAMS) + 1,
    }


@pytest.mark.parametrize("mart", ["fct_credit_spend_daily", "fct_credit_spend_project_daily",
                                  "fct_credit_spend_branch_daily"])  # fmt: skip
def test_credits_per_team(q, tiny_truth, mart):
    expected: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in tiny_truth.job_runs().to_pylist():
        expected[(org_of(r["project_slug"]), r["project_slug"], owner(r["project_slug"], r["job_name"]))] += r[
            "total_credits"
        ]
    got = {(r["org_slug"], r["project_slug"], r["team"]): r["credits"]
           for r in q(f"select org_slug, project_slug, team, sum(total_credits) as credits from {mart} group by all")}  # fmt: skip
    assert got == dict(expected)


def test_forecast_per_org_and_team(q, tiny_truth):
    """Month-to-date credits per org and per org x team (the as-of date is the month's last day,
    so the forecast is the month-to-date figure); team rows add up to the org row."""
    by_team: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in tiny_truth.job_runs().to_pylist():
        if MONTH[0] <= r["job_run_date"] <= MONTH[1]:
            by_team[(org_of(r["project_slug"]), owner(r["project_slug"], r["job_name"]))] += r["total_credits"]
    by_org: dict[tuple, Decimal] = defaultdict(Decimal)
    for (org, _), credits in by_team.items():
        by_org[(org, None)] += credits
    rows = q("select org_slug, team, is_org_total, mtd_credits, forecast_credits, days_left from fct_credit_forecast")
    assert {(r["org_slug"], r["team"]): r["mtd_credits"] for r in rows} == {**by_team, **by_org}
    assert all(r["forecast_credits"] == r["mtd_credits"] and r["days_left"] == 0 for r in rows)
    assert all(r["is_org_total"] == (r["team"] is None) for r in rows)


def test_waste_per_team(q, tiny_truth):
    expected: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for p, j in tiny_truth.jobs():
        if j.status in ("failed", "infrastructure_fail"):
            expected[owner(p.slug, j.name)]["failed"] += centi(j.credits_total_centi)
    for j in tiny_truth.flaky_job_failures():
        expected[owner(j.workflow.pipeline.project.slug, j.name)]["flaky"] += centi(j.credits_total_centi)
    got = {r["team"]: {"failed": r["failed"], "flaky": r["flaky"]}
           for r in q("select team, sum(failed_credits) as failed, sum(flaky_failure_credits) as flaky "
                      "from fct_waste_daily group by team")}  # fmt: skip
    assert got == {t: {"failed": v["failed"], "flaky": v["flaky"]} for t, v in expected.items()}


def test_flaky_tests_per_team(q, tiny_truth):
    expected = Counter(owner(project, job) for project, job, _, _ in tiny_truth.flaky_tests())
    got = {r["team"]: r["n"] for r in q("select team, count(*) as n from fct_flaky_tests group by team")}
    assert got == dict(expected)
    for r in q("select distinct project_slug, job_name, team from fct_flaky_tests_weekly"):
        assert r["team"] == owner(r["project_slug"], r["job_name"])


def test_mttr_per_team_follows_the_project_rule(q, tiny_truth):
    """A workflow has no job: its team is its project's (rules naming jobs never match it)."""
    expected = Counter()
    for (project, _, _, _), v in tiny_truth.mttr_weekly().items():
        expected[(org_of(project), owner(project))] += v["recoveries"]
    got = {(r["org_slug"], r["team"]): r["n"]
           for r in q("select org_slug, team, sum(recoveries) as n from fct_mttr_weekly group by all")}  # fmt: skip
    assert got == dict(expected)
    assert set(got) >= {("gh/acme-robotics", "web"), ("gh/acme-robotics", UNASSIGNED)}


def test_right_sizing_rows_carry_their_job_owner(q, tiny_truth):
    rows = q("select project_slug, job_name, team from fct_right_sizing")
    assert {(r["project_slug"], r["job_name"]) for r in rows} >= {k[:2] for k in tiny_truth.right_sizing_p95()}
    assert all(r["team"] == owner(r["project_slug"], r["job_name"]) for r in rows)


#: Every fact mart but the forecast (per org and team, no project).
PROJECT_MARTS = sorted(
    p.stem
    for p in (SQL_DIR / "models" / "marts").glob("fct_*.sql")
    if p.stem not in ("fct_credit_forecast", "fct_alert_history")
)


@pytest.mark.parametrize("mart", PROJECT_MARTS)
def test_every_fact_mart_carries_org_and_team(q, mart):
    rows = q(f"select distinct project_slug, org_slug, team from {mart}")
    assert rows, mart
    assert all(r["org_slug"] == org_of(r["project_slug"]) and r["team"] is not None for r in rows)


def test_team_budgets_alert_exactly_the_teams_over_them(tiny_db, tiny_truth):
    """The alert rule `forecast_over_budget` per team, on the team marts: a team is alerted when
    its forecast (over every org) exceeds its budget; the figure is the truth's team forecast."""
    from circleci_analytics.alerts import rules

    forecast: dict[str, Decimal] = defaultdict(Decimal)
    for r in tiny_truth.job_runs().to_pylist():
        if MONTH[0] <= r["job_run_date"] <= MONTH[1]:  # the as-of month's last day: forecast = month to date
            forecast[owner(r["project_slug"], r["job_name"])] += r["total_credits"]
    teams = sorted(forecast)
    over = set(teams[::2])  # budgets just under the forecast for every other team, just over for the rest
    budgets = {t: forecast[t] * (Decimal("0.99") if t in over else Decimal("1.01")) for t in teams}
    incidents = rules.forecast_over_budget(tiny_db, "team", budgets.get, "team")
    assert {i.subject: i.figure for i in incidents} == {f"team {t}": float(forecast[t]) for t in over}
    assert all(i.threshold == float(budgets[i.subject.removeprefix("team ")]) for i in incidents)
