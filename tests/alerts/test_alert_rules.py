"""Each rule against small hand-built marts: what crosses its threshold, and only that."""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pytest

from circleci_analytics.alerts import rules
from circleci_analytics.alerts.notify import TITLES
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.settings import ALERT_RULES, AlertSettings

ORG = "1c3f0000-0000-4000-8000-000000000001"


def connect(path):
    return duckdb.connect(str(path), read_only=True)


def test_every_rule_has_a_title_and_links_an_existing_dashboard_page() -> None:
    from circleci_analytics.dashboards import PAGES

    assert set(TITLES) == set(ALERT_RULES)
    slugs = {p["slug"] for p in PAGES}
    assert {"credits", "flakiness", "reliability", "index"} <= slugs


def test_credit_anomaly_within_lookback_and_above_min_excess(alert_marts) -> None:
    db = alert_marts(fct_credit_anomalies=[
        ("2026-06-10", "p1", "gh/o/web", 500, 100.0, 400.0, True),
        ("2026-06-09", "p2", "gh/o/api", 120, 100.0, 20.0, True),  # excess below the minimum
        ("2026-06-03", "p1", "gh/o/web", 900, 100.0, 800.0, True),  # outside 7 days (06-04..06-10)
        ("2026-06-08", "p1", "gh/o/web", 90, 100.0, None, False),
    ])  # fmt: skip
    with connect(db) as con:
        found = rules.credit_anomalies(con, AlertSettings(anomaly_min_excess_credits=50))
        assert [(i.subject, json.loads(i.key), i.figure, i.threshold) for i in found] == [
            ("gh/o/web", ["p1", "2026-06-10"], 500.0, 100.0)
        ]
        assert found[0].line == ("gh/o/web spent 500.0 credits on 2026-06-10, above its anomaly threshold of 100.0 "
                                 "credits (mean + 3 sd of the 28 days before)")  # fmt: skip
        assert len(rules.credit_anomalies(con, AlertSettings(anomaly_lookback_days=8))) == 3


MTD = [  # as_of 2026-06-10, 20 days left; org total forecast 1,500; team a 1,000, team b 500
    ("2026-06-10", "2026-06-01", 20, ORG, "p1", "a", 300, 600),
    ("2026-06-10", "2026-06-01", 20, ORG, "p2", "a", 200, 400),
    ("2026-06-10", "2026-06-01", 20, ORG, "p3", "b", 250, 500),
]


@pytest.mark.parametrize(("budget", "alerts"), [(Decimal(1499), True), (Decimal(1500), False)])
def test_org_forecast_above_budget(alert_marts, budget, alerts) -> None:
    with connect(alert_marts(fct_credit_month_to_date=MTD)) as con:
        found = rules.forecast_over_budget(con, "org_id", lambda _: budget, "org", {ORG: "gh/o"})
    assert [(i.subject, i.figure, i.threshold, json.loads(i.key)) for i in found] == (
        [("org gh/o", 1500.0, float(budget), ["org_id", ORG, "2026-06"])] if alerts else []
    )
    if alerts:
        assert found[0].line == ("org gh/o: month-end forecast 1,500 credits for 2026-06 (month to date 750, 20 day(s) "
                                 "left) exceeds the monthly budget of 1,499 credits")  # fmt: skip


def test_team_forecast_above_budget_is_the_same_rule_over_the_team_column(alert_marts) -> None:
    budgets = {"a": Decimal(900), "b": Decimal(600)}  # a is over (1,000), b is not; c has no budget
    unbudgeted = ("2026-06-10", "2026-06-01", 20, ORG, "p4", "c", 1, 9999)
    with connect(alert_marts(fct_credit_month_to_date=[*MTD, unbudgeted])) as con:
        found = rules.forecast_over_budget(con, "team", budgets.get, "team")
    assert [(i.subject, i.figure, i.threshold, json.loads(i.key)) for i in found] == [
        ("team a", 1000.0, 900.0, ["team", "a", "2026-06"])
    ]


def test_team_budgets_are_evaluated_from_the_settings(alert_marts, tmp_path) -> None:
    from circleci_analytics.alerts import evaluate
    from circleci_analytics.settings import Settings

    s = Settings(alerts={"team_monthly_budget_credits": {"a": 900}, "rules": ["forecast_over_budget"]})
    db = alert_marts(fct_credit_month_to_date=MTD)
    assert [i.subject for i in evaluate(s, db)] == ["team a"]
    s = Settings(alerts={"team_monthly_budget_credits": {"a": 10**9}, "rules": ["forecast_over_budget"]})
    assert evaluate(s, db) == []


def test_forecast_rule_refuses_a_column_that_is_not_a_name(alert_marts) -> None:
    with connect(alert_marts()) as con, pytest.raises(ValueError, match="not a column name"):
        rules.forecast_over_budget(con, "team; drop table x", lambda _: 1, "team")


def test_new_flaky_tests_are_the_currently_flaky_ones_flaking_often_enough(alert_marts) -> None:
    db = alert_marts(fct_flaky_tests=[
        ("gh/o/web", "unit", "tests.A", "test_x", 3, "2026-06-09 10:00:00+00", True, 12.5),
        ("gh/o/web", "unit", "tests.A", "test_y", 1, "2026-06-09 10:00:00+00", True, 1),  # flaked too rarely
        ("gh/o/web", "unit", "tests.B", "test_z", 9, "2026-05-01 10:00:00+00", False, 40),  # not currently
    ])  # fmt: skip
    with connect(db) as con:
        found = rules.new_flaky_tests(con, AlertSettings(flaky_min_times_flaked=2))
        assert [(json.loads(i.key), i.figure, i.threshold) for i in found] == [
            (["gh/o/web", "unit", "tests.A", "test_x"], 3.0, 2.0)
        ]
        assert found[0].line == ("test_x (tests.A, job unit) in gh/o/web is flaky: 3 flaked failure(s), the last on "
                                 "2026-06-09, 12.5 credits wasted (alerts from 2)")  # fmt: skip
        assert len(rules.new_flaky_tests(con, AlertSettings())) == 2


def test_mttr_regression_compares_the_last_complete_week_with_the_one_before(alert_marts) -> None:
    db = alert_marts(fct_mttr_weekly=[
        ("gh/o/web", "build", "main", "2026-05-25", 3, 600.0),
        ("gh/o/web", "build", "main", "2026-06-01", 3, 1800.0),  # 3x: alerts
        ("gh/o/web", "build", "main", "2026-06-08", 5, 99999.0),  # the current, incomplete week
        ("gh/o/web", "build", "dev", "2026-05-25", 3, 600.0),
        ("gh/o/web", "build", "dev", "2026-06-01", 2, 6000.0),  # too few recoveries
        ("gh/o/api", "build", "main", "2026-05-18", 3, 60.0),
        ("gh/o/api", "build", "main", "2026-06-01", 3, 6000.0),  # no recoveries the week before
        ("gh/o/api", "test", "main", "2026-05-25", 1, 60.0),
        ("gh/o/api", "test", "main", "2026-06-01", 3, 6000.0),  # too few recoveries the week before
        ("gh/o/api", "deploy", "main", "2026-05-25", 4, 600.0),
        ("gh/o/api", "deploy", "main", "2026-06-01", 4, 1100.0),  # 1.83x: below the ratio
    ])  # fmt: skip
    with connect(db) as con:
        found = rules.mttr_regressions(con, AlertSettings(mttr_regression_ratio=2, mttr_min_recoveries=3))
        assert [(json.loads(i.key), i.figure, i.threshold) for i in found] == [
            (["gh/o/web", "build", "main", "2026-06-01"], 3.0, 2.0)
        ]
        assert found[0].line == ("build on main in gh/o/web: MTTR 30.0 min in the week of 2026-06-01 (3 recoveries), "
                                 "3.0x the week before (10.0 min, 3 recoveries); alerts from 2x with at least 3 "
                                 "recoveries a week")  # fmt: skip
        assert len(rules.mttr_regressions(con, AlertSettings(mttr_regression_ratio=1.5, mttr_min_recoveries=2))) == 3


@pytest.mark.parametrize(("statuses", "expected"), [(["failed", "partial"], 1), (["failed"], 0)])
def test_run_problem_when_the_run_is_partial(statuses, expected) -> None:
    summary = RunSummary("nightly", ["gh/o"], unknown_projects=["gh/o/gone"])
    found = rules.run_problems(summary, "run-1", AlertSettings(run_statuses=statuses))
    assert len(found) == expected
    if expected:
        assert found[0].line == "nightly run run-1 (gh/o) is partial: 1 unknown project(s)"
        assert found[0].key == '["run-1"]'


def test_a_complete_run_is_no_incident_and_a_failed_one_names_its_tests() -> None:
    assert rules.run_problems(RunSummary("nightly", ["gh/o"]), "r", AlertSettings()) == []
    failed = RunSummary("nightly", ["gh/o"], data_tests_failed=["unique_x"])
    (incident,) = rules.run_problems(failed, "r", AlertSettings())
    assert incident.line == "nightly run r (gh/o) failed: data tests failed: unique_x"


def test_a_run_stopped_by_an_error_failed_and_only_the_run_is_judged(tmp_path) -> None:
    from circleci_analytics.alerts import evaluate
    from circleci_analytics.settings import Settings

    summary = RunSummary("nightly", ["gh/o"], unknown_projects=["gh/o/gone"])
    error = RuntimeError("the API refused the token")
    (incident,) = rules.run_problems(summary, "r", AlertSettings(run_statuses=["failed"]), error)
    assert incident.line == ("nightly run r (gh/o) failed: stopped by RuntimeError: the API refused the token; "
                             "1 unknown project(s)")  # fmt: skip
    # no warehouse is read (there may be none yet)
    found = evaluate(Settings(), tmp_path / "no-such.duckdb", summary, "r", error)
    assert [i.rule for i in found] == ["run_problem"]
