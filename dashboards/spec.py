"""What each page shows: KPI cards, charts and tables, declared as data.

Every element names the query file (`queries/<query>.sql`) whose rows it draws. The
browser (assets/dashboard.js) filters those rows by project, branch and date and
aggregates them as declared here, so filters never need a server:

- project filter applies to rows with a `project_slug` column, org and team filters to
  rows with `org_slug` and `team` columns (every query carries them: a job's team, or its
  project's where a row has no job), branch filter to rows with a `branch` column, the
  date range to the element's `date` column;
- `branch_rollup`: the query returns per-branch rows *and* all-branch rows
  (`all_branches` true, grouping sets), for measures that do not add up (percentiles);
- measures: `{"sum": col}` or `{"ratio": [numerator, denominator]}` over the kept rows;
- series charts draw the `top` (default 10) series by `rank` (default: the sum, or the
  ratio's denominator) and add the rest up as "other" (not where measures do not add up);
- `per_day`: the column holding each row's period length in days (queries over
  dim_reporting_periods: days, then weeks): the chart plots the sum divided by it;
- a KPI's `covered` column is false when data does not reach back to the earlier period:
  its week-over-week change is shown as n/a.

Where each page's data goes (the page's data file, loaded on demand per project and per
branch) is `layout.py`'s job. `empty` says why an element can be empty, in words a reader
can act on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAGES", "Page", "queries_used"]

Page = dict[str, Any]

NO_CREDITS = "No credit data yet: the usage-export step has not landed any job runs in the warehouse."
NO_WORKFLOWS = "No workflow runs yet: the Insights step has not landed any workflow runs."
NO_TESTS = "No test metadata yet: the tests step has not landed any job test results."
NO_JOBS = "No job runs yet: the usage-export step has not landed any job runs."
NO_JOB_METRICS = "No job metrics yet: the Insights step has not landed any job time series or job metrics."
NO_TEST_METRICS = "No test metrics yet: the Insights step has not landed any test metrics."
#: How long histories are drawn (dim_reporting_periods).
PERIODS = "daily for the last 90 days, weekly averages before"
NO_RECOMMENDATIONS = (
    "No recommendations: every job's p95 CPU and RAM already fit its resource class "
    "(or no job ran long enough, 15 s, to report utilisation in the last 30 days)."
)

PAGES: list[Page] = [
    {
        "slug": "index",
        "title": "Overview",
        "intro": "Where the credits go, how often workflows are red and for how long, and how many tests flake. "
        "KPIs are as of the data's last complete day; week over week (WoW) compares its last 7 days with "
        "the 7 before. KPIs follow the project and branch filters, not the date range.",
        "kpis": [
            {
                "id": "credits_mtd",
                "query": "kpi_credits",
                "label": "Credits month to date",
                "value": {"sum": "credits_mtd"},
                "fmt": "credits",
                "sub": {"sum": "usd_mtd"},
                "sub_fmt": "usd",
                "current": {"sum": "credits_last_7d"},
                "previous": {"sum": "credits_prev_7d"},
                "delta": "pct",
                "delta_label": "7-day spend",
                "lower_is_better": True,
                "covered": "previous_covered",
                "empty": NO_CREDITS,
            },
            {
                "id": "credits_forecast",
                "query": "kpi_credits",
                "label": "Month-end forecast",
                "value": {"sum": "credits_forecast"},
                "fmt": "credits",
                "sub": {"sum": "usd_forecast"},
                "sub_fmt": "usd",
                "current": {"sum": "credits_last_7d"},
                "previous": {"sum": "credits_prev_7d"},
                "delta": "pct",
                "delta_label": "daily run rate",
                "lower_is_better": True,
                "covered": "previous_covered",
                "empty": NO_CREDITS,
            },
            {
                "id": "success_rate",
                "query": "kpi_success_rate",
                "label": "Success rate (7 days)",
                "value": {"ratio": ["successes_last_7d", "outcomes_last_7d"]},
                "fmt": "pct",
                "current": {"ratio": ["successes_last_7d", "outcomes_last_7d"]},
                "previous": {"ratio": ["successes_prev_7d", "outcomes_prev_7d"]},
                "delta": "pp",
                "covered": "previous_covered",
                "empty": NO_WORKFLOWS,
            },
            {
                "id": "mttr",
                "query": "kpi_mttr",
                "label": "MTTR (7 days)",
                "value": {"ratio": ["recovery_seconds_last_7d", "recoveries_last_7d"]},
                "fmt": "duration",
                "current": {"ratio": ["recovery_seconds_last_7d", "recoveries_last_7d"]},
                "previous": {"ratio": ["recovery_seconds_prev_7d", "recoveries_prev_7d"]},
                "delta": "pct",
                "lower_is_better": True,
                "covered": "previous_covered",
                "empty": "No recoveries in the last 7 days: no workflow went from failing back to green.",
            },
            {
                "id": "flaky_tests",
                "query": "kpi_flaky_tests",
                "label": "Flaky tests (last 14 days)",
                "value": {"sum": "flaky_tests_now"},
                "fmt": "int",
                "current": {"sum": "flaky_tests_now"},
                "previous": {"sum": "flaky_tests_week_ago"},
                "delta": "abs",
                "lower_is_better": True,
                "covered": "previous_covered",
                "empty": NO_TESTS,
            },
        ],
        "elements": [
            {
                "id": "overview_credits",
                "type": "series",
                "query": "credits_by_project",
                "title": f"Credits per day, selected projects ({PERIODS})",
                "x": "period_start",
                "date": "period_start",
                "per_day": "period_days",
                "series": [],
                "y": {"sum": "credits"},
                "mode": "bar",
                "y_title": "credits per day",
                "empty": NO_CREDITS,
            },
            {
                "id": "overview_success",
                "type": "series",
                "query": "success_rate_weekly",
                "title": "Weekly success rate by project",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug"],
                "y": {"ratio": ["successes", "outcomes"]},
                "mode": "lines",
                "y_title": "success rate",
                "y_format": "pct",
                "empty": NO_WORKFLOWS,
            },
        ],
    },
    {
        "slug": "credits",
        "title": "Credit spend",
        "intro": "Usage-export credits (billing grade). Anomaly: a project-day above the mean + 3 standard "
        "deviations of its 28 preceding days (needs 14 days of history); marked with a red x.",
        "elements": [
            {
                "id": "credits_project",
                "type": "series",
                "query": "credits_by_project",
                "wide": True,
                "title": f"Credits per day by project ({PERIODS}; anomalous days marked)",
                "x": "period_start",
                "date": "period_start",
                "per_day": "period_days",
                "series": ["project_slug"],
                "y": {"sum": "credits"},
                "mode": "lines",
                "y_title": "credits per day",
                "markers": {
                    "query": "credit_anomalies",
                    "x": "credit_date",
                    "y": "credits",
                    "label": ["project_slug"],
                    "name": "anomaly",
                },
                "empty": NO_CREDITS,
            },
            {
                "id": "credits_resource_class",
                "type": "series",
                "query": "credits_by_resource_class",
                "title": f"Credits per day by resource class ({PERIODS})",
                "x": "period_start",
                "date": "period_start",
                "per_day": "period_days",
                "series": ["resource_class"],
                "y": {"sum": "credits"},
                "mode": "bar",
                "y_title": "credits per day",
                "empty": NO_CREDITS,
            },
            {
                "id": "credits_credit_type",
                "type": "series",
                "query": "credits_by_credit_type",
                "title": f"Credits per day by credit type ({PERIODS})",
                "x": "period_start",
                "date": "period_start",
                "per_day": "period_days",
                "series": ["credit_type"],
                "y": {"sum": "credits"},
                "mode": "bar",
                "y_title": "credits per day",
                "empty": NO_CREDITS,
            },
            {
                "id": "credit_movers",
                "type": "table",
                "query": "credit_top_movers",
                "title": "Top movers: latest complete ISO week vs the week before (project x workflow)",
                "columns": [
                    ["week_start", "Week of", "text"],
                    ["project_slug", "Project", "text"],
                    ["workflow_name", "Workflow", "text"],
                    ["credits", "This week", "credits"],
                    ["previous_week_credits", "Week before", "credits"],
                    ["delta_credits", "Change", "signed"],
                    ["delta_pct", "Change %", "pct_signed"],
                ],
                "sort": "abs_delta_credits",
                "limit": 15,
                "empty": "No complete week of credit data yet: movers need a full ISO week before the as-of date.",
            },
            {
                "id": "credit_anomaly_table",
                "type": "table",
                "query": "credit_anomalies",
                "title": "Anomalous project-days",
                "date": "credit_date",
                "columns": [
                    ["credit_date", "Day", "text"],
                    ["project_slug", "Project", "text"],
                    ["credits", "Credits", "credits"],
                    ["threshold_credits", "Threshold", "credits"],
                    ["trailing_28d_mean_credits", "28-day mean", "credits"],
                    ["excess_credits", "Excess", "credits"],
                ],
                "sort": "credit_date",
                "limit": 50,
                "empty": "No anomalies: no project-day exceeded its trailing 28-day mean + 3 standard deviations "
                "(or there are fewer than 14 days of history).",
            },
        ],
    },
    {
        "slug": "flakiness",
        "title": "Flakiness",
        "intro": "A test flaked on a commit when it both passed and failed on it. Wasted: failed job runs whose "
        "failing tests all flaked, split equally among those tests. Top lists and the table cover the "
        "whole history (the date range applies to the trends).",
        "elements": [
            {
                "id": "flaky_by_credits",
                "type": "barh",
                "query": "flaky_tests",
                "title": "Top flaky tests by credits wasted",
                "category": ["test_label", "job_name", "project_name"],
                "category_format": "{0} ({1}, {2})",
                "value": {"sum": "credits_wasted"},
                "limit": 15,
                "positive_only": True,
                "x_title": "credits wasted",
                "empty": NO_TESTS,
            },
            {
                "id": "flaky_by_time",
                "type": "barh",
                "query": "flaky_tests",
                "title": "Top flaky tests by time wasted (job minutes)",
                "category": ["test_label", "job_name", "project_name"],
                "category_format": "{0} ({1}, {2})",
                "value": {"sum": "job_seconds_wasted"},
                "x_scale": 1 / 60,
                "limit": 15,
                "positive_only": True,
                "x_title": "minutes of job runs wasted",
                "empty": NO_TESTS,
            },
            {
                "id": "flaky_trend",
                "type": "series",
                "query": "flaky_trend",
                "title": "Flaked failures per week",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug"],
                "y": {"sum": "flaked_failures"},
                "mode": "bar",
                "y_title": "flaked failures",
                "empty": NO_TESTS,
            },
            {
                "id": "flaky_waste",
                "type": "series",
                "query": "flaky_waste_daily",
                "title": "Credits wasted by flaky job failures per day",
                "x": "waste_date",
                "date": "waste_date",
                "series": ["project_slug"],
                "y": {"sum": "flaky_failure_credits"},
                "mode": "bar",
                "y_title": "credits",
                "empty": "No flaky job failures yet: no failed job run had only flaky failing tests.",
            },
            {
                "id": "flaky_table",
                "type": "table",
                "query": "flaky_tests",
                "title": "Flaky tests",
                "columns": [
                    ["project_slug", "Project", "text"],
                    ["job_name", "Job", "text"],
                    ["classname", "Class", "text"],
                    ["test_name", "Test", "text"],
                    ["runs", "Runs", "int"],
                    ["times_flaked", "Times flaked", "int"],
                    ["flip_rate", "Flip rate", "pct"],
                    ["flip_rate_smoothed", "Flip rate (smoothed)", "pct"],
                    ["last_flake_at", "Last flake", "datetime"],
                    ["currently_flaky", "Current", "bool"],
                    ["job_seconds_wasted", "Job time wasted", "duration"],
                    ["credits_wasted", "Credits wasted", "credits2"],
                ],
                "sort": "credits_wasted",
                "limit": 200,
                "empty": NO_TESTS,
            },
        ],
    },
    {
        "slug": "reliability",
        "title": "Reliability",
        "intro": "MTTR: mean time from the first failure of a streak to the next success, by the week the "
        "recovery happened (project x workflow x branch streaks). Success rate ignores canceled runs. "
        "Durations are of successful runs. Runs older than Insights' 90 days come from the usage export, "
        "which cannot tell canceled from failed runs.",
        "elements": [
            {
                "id": "mttr_weekly",
                "type": "series",
                "query": "mttr_weekly",
                "title": "Weekly MTTR per workflow",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug", "workflow_name"],
                "y": {"ratio": ["recovery_seconds", "recoveries"]},
                "y_scale": 1 / 3600,
                "mode": "lines",
                "y_title": "MTTR (hours)",
                "empty": "No recoveries yet: no workflow has gone from failing back to green.",
            },
            {
                "id": "success_weekly",
                "type": "series",
                "query": "success_rate_weekly",
                "title": "Weekly success rate per workflow",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug", "workflow_name"],
                "y": {"ratio": ["successes", "outcomes"]},
                "mode": "lines",
                "y_title": "success rate",
                "y_format": "pct",
                "empty": NO_WORKFLOWS,
            },
            {
                "id": "duration_p50",
                "type": "series",
                "query": "duration_weekly",
                "branch_rollup": True,
                "title": "Weekly p50 workflow duration",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug", "workflow_name"],
                "y": {"sum": "p50_duration_seconds"},
                "rank": "successful_runs",
                "y_scale": 1 / 60,
                "mode": "lines",
                "y_title": "minutes",
                "empty": NO_WORKFLOWS,
            },
            {
                "id": "duration_p95",
                "type": "series",
                "query": "duration_weekly",
                "branch_rollup": True,
                "title": "Weekly p95 workflow duration",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug", "workflow_name"],
                "y": {"sum": "p95_duration_seconds"},
                "rank": "successful_runs",
                "y_scale": 1 / 60,
                "mode": "lines",
                "y_title": "minutes",
                "empty": NO_WORKFLOWS,
            },
            {
                "id": "queue_time",
                "type": "series",
                "query": "queue_time_weekly",
                "branch_rollup": True,
                "title": "Weekly job queue time (p50 and p95)",
                "x": "week_start",
                "date": "week_start",
                "series": ["project_slug", "stat"],
                "y": {"sum": "queue_seconds"},
                "rank": "job_runs",
                "mode": "lines",
                "y_title": "seconds",
                "empty": NO_JOBS,
            },
        ],
    },
    {
        "slug": "performance",
        "title": "Jobs, tests and branches",
        "intro": "Job performance on the default branch from Insights (daily time series; the table: its longest "
        "reporting window, with queue time from the usage export); the slowest and most failed tests of each "
        "workflow's most recent runs (Insights' test metrics); the most active branches of each project (usage "
        "export, trailing 30 days). Durations are of successful runs.",
        "elements": [
            # one row per day and job: percentiles drawn as they are (branch_rollup: never added up)
            *(
                {
                    "id": f"job_{stat}_daily",
                    "type": "series",
                    "query": "job_performance_daily",
                    "branch_rollup": True,
                    "title": f"Daily {stat} job duration, busiest jobs (default branch)",
                    "x": "day",
                    "date": "day",
                    "series": ["project_slug", "workflow_name", "job_name"],
                    "y": {"sum": f"duration_{stat}_seconds"},
                    "rank": "runs",
                    "y_scale": 1 / 60,
                    "mode": "lines",
                    "y_title": "minutes",
                    "empty": NO_JOB_METRICS,
                }
                for stat in ("p95", "p50")
            ),
            {
                "id": "job_success_daily",
                "type": "series",
                "query": "job_performance_daily",
                "title": "Daily job success rate by project (default branch)",
                "x": "day",
                "date": "day",
                "series": ["project_slug"],
                "y": {"ratio": ["successful_runs", "outcomes"]},
                "mode": "lines",
                "y_title": "success rate",
                "y_format": "pct",
                "empty": NO_JOB_METRICS,
            },
            {
                "id": "job_table",
                "type": "table",
                "query": "job_performance",
                "wide": True,
                "title": "Jobs (Insights' longest reporting window, default branch)",
                "columns": [
                    ["project_slug", "Project", "text"],
                    ["workflow_name", "Workflow", "text"],
                    ["job_name", "Job", "text"],
                    ["runs", "Runs", "int"],
                    ["success_rate", "Success", "pct"],
                    ["duration_p50_seconds", "p50 duration", "duration"],
                    ["duration_p95_seconds", "p95 duration", "duration"],
                    ["queue_p50_seconds", "p50 queue", "duration"],
                    ["queue_p95_seconds", "p95 queue", "duration"],
                ],
                "sort": "runs",
                "limit": 100,
                "empty": NO_JOB_METRICS,
            },
            {
                "id": "slowest_tests",
                "type": "barh",
                "query": "test_performance",
                "title": "Slowest tests (p95 run time of passing results)",
                "category": ["test_label", "job_name", "project_name"],
                "category_format": "{0} ({1}, {2})",
                "value": {"sum": "slow_p95_seconds"},
                "limit": 15,
                "positive_only": True,
                "x_title": "seconds",
                "empty": NO_TEST_METRICS,
            },
            {
                "id": "most_failed_tests",
                "type": "barh",
                "query": "test_performance",
                "title": "Most failed tests (failed results in the recent runs)",
                "category": ["test_label", "job_name", "project_name"],
                "category_format": "{0} ({1}, {2})",
                "value": {"sum": "failed_count"},
                "limit": 15,
                "positive_only": True,
                "x_title": "failed results",
                "empty": NO_TEST_METRICS,
            },
            {
                "id": "test_table",
                "type": "table",
                "query": "test_performance",
                "title": "Slowest and most failed tests",
                "columns": [
                    ["project_slug", "Project", "text"],
                    ["workflow_name", "Workflow", "text"],
                    ["job_name", "Job", "text"],
                    ["classname", "Class", "text"],
                    ["test_name", "Test", "text"],
                    ["total_runs", "Results", "int"],
                    ["failed_runs", "Failed", "int"],
                    ["failure_rate", "Failure rate", "pct"],
                    ["p95_duration_seconds", "p95 run time (s)", "num1"],
                    ["is_flaky", "Flaky", "bool"],
                ],
                "sort": "failed_runs",
                "limit": 100,
                "empty": NO_TEST_METRICS,
            },
            {
                "id": "branch_credits",
                "type": "barh",
                "query": "branch_activity",
                "title": "Most active branches: credits in the last 30 days",
                "category": ["branch", "project_slug"],
                "category_format": "{0} ({1})",
                "value": {"sum": "credits_30d"},
                "limit": 15,
                "positive_only": True,
                "x_title": "credits",
                "empty": NO_CREDITS,
            },
            {
                "id": "branch_table",
                "type": "table",
                "query": "branch_activity",
                "wide": True,
                "title": "Most active branches (20 per project, and its default branch)",
                "columns": [
                    ["project_slug", "Project", "text"],
                    ["branch", "Branch", "text"],
                    ["workflow_runs_30d", "Runs (30 days)", "int"],
                    ["success_rate_30d", "Success (30 days)", "pct"],
                    ["credits_30d", "Credits (30 days)", "credits"],
                    ["workflow_runs", "Runs (all)", "int"],
                    ["success_rate", "Success (all)", "pct"],
                    ["total_credits", "Credits (all)", "credits"],
                    ["last_activity_at", "Last activity", "datetime"],
                ],
                "sort": "credits_30d",
                "limit": 100,
                "empty": NO_CREDITS,
            },
        ],
    },
    {
        "slug": "rightsizing",
        "title": "Right-sizing",
        "intro": "Per project x job x resource class over the trailing 30 days: p95 of peak CPU and RAM, the "
        "cheapest class of the same family that fits with the build's headroom, and the credits it would "
        "save per 30 days (negative: an upsize). Check the resource-class table against CircleCI's pricing "
        "page before relying on the savings.",
        "elements": [
            {
                "id": "rightsizing_savings",
                "type": "barh",
                "query": "right_sizing",
                "wide": True,
                "title": "Projected savings (credits per 30 days)",
                "category": ["job_name", "resource_class", "recommended_resource_class", "project_name"],
                "category_format": "{0}: {1} → {2} ({3})",
                "value": {"sum": "projected_monthly_savings_credits"},
                "limit": 20,
                "positive_only": True,
                "x_title": "credits / 30 days",
                "empty": NO_RECOMMENDATIONS,
            },
            {
                "id": "rightsizing_table",
                "type": "table",
                "query": "right_sizing",
                "title": "Recommendations",
                "columns": [
                    ["project_slug", "Project", "text"],
                    ["job_name", "Job", "text"],
                    ["resource_class", "Current", "text"],
                    ["recommended_resource_class", "Recommended", "text"],
                    ["recommendation", "Change", "text"],
                    ["p95_max_cpu_pct", "p95 CPU %", "num1"],
                    ["p95_max_ram_pct", "p95 RAM %", "num1"],
                    ["job_runs", "Runs", "int"],
                    ["billed_minutes_30d", "Billed minutes", "int"],
                    ["projected_monthly_savings_credits", "Savings (credits)", "credits"],
                    ["projected_monthly_savings_usd", "Savings (USD)", "usd"],
                ],
                "sort": "projected_monthly_savings_credits",
                "limit": 100,
                "empty": NO_RECOMMENDATIONS,
            },
        ],
    },
]


def queries_used(page: Page) -> list[str]:
    """The query files one page draws from, in first-use order."""
    names: list[str] = []
    for item in [*page.get("kpis", []), *page.get("elements", [])]:
        for q in (item["query"], item.get("markers", {}).get("query")):
            if q and q not in names:
                names.append(q)
    return names
