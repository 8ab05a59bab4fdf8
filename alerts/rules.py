"""The alert rules: each reads the marts (or the run summary) and returns its incidents.

A rule only selects rows the marts already computed (the anomaly test, the month-end forecast,
currently-flaky tests, weekly MTTR) and compares them with its threshold from `AlertSettings`;
the metric definitions stay in ``sql/``. Each incident carries the key under which it is
alerted once (`Incident.key`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from circleci_analytics.settings import AlertSettings

__all__ = ["Incident", "credit_anomalies", "forecast_over_budget", "mttr_regressions", "new_flaky_tests",
           "run_problems"]  # fmt: skip


@dataclass(frozen=True)
class Incident:
    """One thing worth telling someone, once: `rule` + `key` identify it across runs."""

    rule: str
    key: str  # a JSON list: unambiguous, readable in fct_alert_history
    subject: str  # the project, org, team, test, workflow scope or run it names
    figure: float
    threshold: float
    unit: str
    line: str  # the alert's line, naming subject, figure and threshold
    page: str  # dashboard page slug
    as_of_date: date | None = None


def _key(*parts: Any) -> str:
    return json.dumps([str(p) if p is not None else None for p in parts], ensure_ascii=False)


def _as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    row = con.execute("select as_of_date from warehouse_meta").fetchone()
    return row[0] if row else None


def credit_anomalies(con: duckdb.DuckDBPyConnection, cfg: AlertSettings) -> list[Incident]:
    """Project-days of the last `anomaly_lookback_days` days of data that `fct_credit_anomalies`
    flags (credits above mean + 3 sd of the 28 days before) by at least `anomaly_min_excess_credits`."""
    rows = con.execute(
        """
        select a.project_id, a.project_slug, a.spend_date, cast(a.credits as double), a.threshold_credits, m.as_of_date
        from fct_credit_anomalies as a
        cross join warehouse_meta as m
        where a.is_anomaly
            and a.spend_date > m.as_of_date - cast(? as integer)
            and a.excess_credits >= ?
        order by a.spend_date, a.project_slug
        """,
        [cfg.anomaly_lookback_days, cfg.anomaly_min_excess_credits],
    ).fetchall()
    return [
        Incident(
            "credit_anomaly",
            _key(project_id, day),
            slug,
            credits,
            threshold,
            "credits",
            f"{slug} spent {credits:,.1f} credits on {day}, above its anomaly threshold of {threshold:,.1f} "
            "credits (mean + 3 sd of the 28 days before)",
            "credits",
            as_of,
        )  # fmt: skip
        for project_id, slug, day, credits, threshold, as_of in rows
    ]


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def forecast_over_budget(con: duckdb.DuckDBPyConnection, column: str, budget_for: Callable[[str], Decimal | None],
                         noun: str, labels: Mapping[str, str] | None = None) -> list[Incident]:  # fmt: skip
    """Groups of `fct_credit_month_to_date` by `column` (``org_id``; ``team`` for per-team
    budgets) whose month-end forecast exceeds `budget_for(value)` (None: no budget).
    `noun` and `labels` (value -> name) say what a group is in the message."""
    if not _IDENTIFIER.fullmatch(column):
        raise ValueError(f"not a column name: {column!r}")
    rows = con.execute(
        f"""
        select "{column}", any_value(month_start), any_value(days_left), any_value(as_of_date),
            sum(mtd_credits), sum(forecast_credits)
        from fct_credit_month_to_date
        group by 1
        order by 1
        """
    ).fetchall()
    out = []
    for value, month_start, days_left, as_of, mtd, forecast in rows:
        budget = budget_for(value)
        if budget is None or forecast <= budget:
            continue
        name = f"{noun} {(labels or {}).get(value, value)}"
        out.append(Incident(
            "forecast_over_budget", _key(column, value, f"{month_start:%Y-%m}"), name, float(forecast), float(budget),
            "credits",
            f"{name}: month-end forecast {float(forecast):,.0f} credits for {month_start:%Y-%m} (month to date "
            f"{float(mtd):,.0f}, {days_left} day(s) left) exceeds the monthly budget of {float(budget):,.0f} credits",
            "credits", as_of,
        ))  # fmt: skip
    return out


def new_flaky_tests(con: duckdb.DuckDBPyConnection, cfg: AlertSettings) -> list[Incident]:
    """Currently flaky tests (a flake in the last 14 days) that flaked at least
    `flaky_min_times_flaked` times; the history makes each one alert once ("new")."""
    rows = con.execute(
        """
        select f.project_slug, f.job_name, f.classname, f.test_name, f.times_flaked, f.last_flake_at,
            cast(f.credits_wasted as double), m.as_of_date
        from fct_flaky_tests as f
        cross join warehouse_meta as m
        where f.currently_flaky and f.times_flaked >= ?
        order by f.project_slug, f.job_name, f.classname, f.test_name
        """,
        [cfg.flaky_min_times_flaked],
    ).fetchall()
    return [
        Incident(
            "new_flaky_test",
            _key(project, job, classname, test),
            f"{project} {job} {classname} {test}",
            float(times),
            float(cfg.flaky_min_times_flaked),
            "flaked failures",
            f"{test} ({classname}, job {job}) in {project} is flaky: {times} flaked failure(s), the last on "
            f"{last:%Y-%m-%d}, {wasted or 0:,.1f} credits wasted (alerts from {cfg.flaky_min_times_flaked})",
            "flakiness",
            as_of,
        )  # fmt: skip
        for project, job, classname, test, times, last, wasted, as_of in rows
    ]


def mttr_regressions(con: duckdb.DuckDBPyConnection, cfg: AlertSettings) -> list[Incident]:
    """Workflow scopes (project x workflow x branch) whose MTTR in the last complete week is at
    least `mttr_regression_ratio` times the week before's, both weeks with at least
    `mttr_min_recoveries` recoveries."""
    rows = con.execute(
        """
        with weeks as (
            select
                *,
                lag(week_start) over scope as previous_week_start,
                lag(mttr_mean_seconds) over scope as previous_mttr_seconds,
                lag(recoveries) over scope as previous_recoveries,
            from fct_mttr_weekly
            window scope as (partition by project_slug, workflow_name, branch order by week_start)
        )
        select w.project_slug, w.workflow_name, w.branch, w.week_start, w.mttr_mean_seconds, w.recoveries,
            w.previous_mttr_seconds, w.previous_recoveries, m.as_of_date
        from weeks as w
        cross join warehouse_meta as m
        where w.week_start = cast(date_trunc('week', m.as_of_date + 1) as date) - 7
            and w.previous_week_start = w.week_start - 7
            and w.recoveries >= ? and w.previous_recoveries >= ?
            and w.previous_mttr_seconds > 0
            and w.mttr_mean_seconds >= ? * w.previous_mttr_seconds
        order by w.project_slug, w.workflow_name, w.branch
        """,
        [cfg.mttr_min_recoveries, cfg.mttr_min_recoveries, cfg.mttr_regression_ratio],
    ).fetchall()
    out = []
    for project, workflow, branch, week, mttr, n, before, n_before, as_of in rows:
        ratio = mttr / before
        out.append(Incident(
            "mttr_regression", _key(project, workflow, branch, week), f"{project} {workflow} {branch}", ratio,
            cfg.mttr_regression_ratio, "x the week before",
            f"{workflow} on {branch} in {project}: MTTR {mttr / 60:,.1f} min in the week of {week} ({n} recoveries), "
            f"{ratio:,.1f}x the week before ({before / 60:,.1f} min, {n_before} recoveries); alerts from "
            f"{cfg.mttr_regression_ratio:g}x with at least {cfg.mttr_min_recoveries} recoveries a week",
            "reliability", as_of,
        ))  # fmt: skip
    return out


def run_problems(summary: Any, run_id: str, cfg: AlertSettings, error: BaseException | None = None) -> list[Incident]:
    """The run itself, when its outcome is in `run_statuses`: failed (data tests failed, or
    `error` stopped it) or partial (`summary.status`)."""
    status = "failed" if error is not None else summary.status
    if status not in cfg.run_statuses:
        return []
    reasons = list(summary.partial_reasons())
    if summary.data_tests_failed:
        reasons.insert(0, f"data tests failed: {', '.join(summary.data_tests_failed)}")
    if error is not None:
        reasons.insert(0, f"stopped by {type(error).__name__}: {error}")
    what = f"{summary.flow} run {run_id} ({', '.join(summary.orgs)})"
    return [Incident("run_problem", _key(run_id), what, float(len(reasons)), 0.0, "problems",
                     f"{what} {'failed' if status == 'failed' else 'is partial'}: {'; '.join(reasons)}", "index",
                     summary.highlights.get("as_of_date"))]  # fmt: skip
