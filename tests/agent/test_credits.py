"""credits_breakdown and month_end_forecast over stdio, against the marts queried directly
and the simulator's ground truth (tiny preset: data from 2026-04-17 to as_of 2026-05-31)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

pytestmark = pytest.mark.xdist_group("agent")

AS_OF = date(2026, 5, 31)
PRICE = Decimal("0.0006")
TYPES = ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges")


def _truth_by_project(truth, start: date, end: date) -> dict[str, float]:
    acc: dict[str, Decimal] = defaultdict(Decimal)
    for (slug, day), credits in truth.credits_by_project_day().items():
        if start <= day <= end:
            acc[slug] += credits
    return {k: float(v) for k, v in acc.items()}


def test_default_is_the_last_30_days_by_project(mcp, q, truth) -> None:
    got = mcp.answer("credits_breakdown")
    start = AS_OF - timedelta(days=29)
    assert got["period"] == {"start_date": start.isoformat(), "end_date": AS_OF.isoformat(), "days": 30}
    assert got["as_of_date"] == AS_OF.isoformat() and got["group_by"] == ["project"]
    direct = q("select project_slug, sum(total_credits) as credits, sum(total_usd) as usd from fct_credit_spend_daily "
               "where spend_date between ? and ? group by all order by credits desc", start, AS_OF)  # fmt: skip
    assert [(r["project"], r["credits"], r["usd"]) for r in got["rows"]] == [
        (r["project_slug"], float(r["credits"]), float(r["usd"])) for r in direct
    ]
    assert {r["project"]: r["credits"] for r in got["rows"]} == _truth_by_project(truth, start, AS_OF)
    assert got["total"]["credits"] == float(sum(r["credits"] for r in direct))
    assert got["total"]["usd"] == pytest.approx(got["total"]["credits"] * 0.0006)
    assert sum(r["share"] for r in got["rows"]) == pytest.approx(1, abs=1e-3)
    assert (got["groups"], got["truncated"], got["other"]) == (3, False, None)


def test_top_n_by_resource_class_and_credit_type_sums_the_rest(mcp, q) -> None:
    got = mcp.answer("credits_breakdown", group_by=["resource_class", "credit_type"], period="all", top_n=3)
    assert got["period"]["start_date"] == "2026-04-17" and got["truncated"]
    per_type = " union all ".join(f"select resource_class, '{t}' as credit_type, {t}_credits as credits "
                                  "from fct_credit_spend_daily" for t in TYPES)  # fmt: skip
    direct = q(f"select resource_class, credit_type, sum(credits) as credits from ({per_type}) group by all "
               "having sum(credits) is not null order by credits desc, resource_class, credit_type")  # fmt: skip
    assert [(r["resource_class"], r["credit_type"], r["credits"]) for r in got["rows"]] == [
        (r["resource_class"], r["credit_type"], float(r["credits"])) for r in direct[:3]
    ]
    (total,) = q("select sum(total_credits) as credits from fct_credit_spend_daily")
    assert got["total"]["credits"] == float(total["credits"])
    assert got["other"]["groups"] == got["groups"] - 3 == len(direct) - 3
    assert got["other"]["credits"] + sum(r["credits"] for r in got["rows"]) == pytest.approx(float(total["credits"]))
    assert got["rows"][0]["usd"] == pytest.approx(got["rows"][0]["credits"] * 0.0006)


def test_credit_types_add_up_to_the_truth(mcp, truth) -> None:
    got = mcp.answer("credits_breakdown", group_by=["credit_type"], period="all", top_n=100)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for (_, _, _, _, kind), credits in truth.credits_daily().items():
        expected[kind] += credits
    assert {r["credit_type"]: r["credits"] for r in got["rows"]} == {t: float(expected[t]) for t in TYPES}
    assert got["total"]["credits"] == float(expected["total"])


def test_filters_by_project_name_and_credit_type_over_explicit_dates(mcp, q) -> None:
    got = mcp.answer("credits_breakdown", group_by=[], start_date="2026-05-10", end_date="2026-05-16",
                     filters={"project": "web-app", "credit_type": "compute", "branch": "main"})  # fmt: skip
    assert got["filters"] == {"project": "gh/acme-robotics/web-app", "credit_type": "compute", "branch": "main"}
    assert got["period"] == {"start_date": "2026-05-10", "end_date": "2026-05-16", "days": 7}
    (direct,) = q("select sum(compute_credits) as credits from fct_credit_spend_daily where project_slug = ? "
                  "and branch = 'main' and spend_date between '2026-05-10' and '2026-05-16'", "gh/acme-robotics/web-app")  # fmt: skip
    assert direct["credits"] > 0
    assert got["rows"] == [{"credits": float(direct["credits"]), "usd": float(direct["credits"] * PRICE), "share": 1.0}]


def test_previous_month_and_month_to_date(mcp, q) -> None:
    april = mcp.answer("credits_breakdown", group_by=[], period="previous_month")
    assert april["period"] == {"start_date": "2026-04-01", "end_date": "2026-04-30", "days": 30}
    (direct,) = q("select sum(total_credits) as c from fct_credit_spend_daily where spend_date < '2026-05-01'")
    assert april["total"]["credits"] == float(direct["c"])
    may = mcp.answer("credits_breakdown", group_by=[], period="month_to_date")
    (mtd,) = q("select sum(mtd_credits) as c from fct_credit_month_to_date")
    assert may["period"]["start_date"] == "2026-05-01" and may["total"]["credits"] == float(mtd["c"])


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"filters": {"project": "gh/acme/nope"}}, "filters.project: unknown project 'gh/acme/nope'; known: "
                                               "'circleci/ne2BS2dbjkMrcekRfth3L8/uA8L25Z17xqySp4Cw4uE8y', "
                                               "'gh/acme-robotics/api-gateway', 'gh/acme-robotics/web-app'"),
    ({"filters": {"branch": "nope"}}, "filters.branch: no credits recorded for branch 'nope'; known: 'main'"),
    ({"filters": {"credit_type": "gpu"}}, "filters.credit_type: unknown credit type 'gpu'; known: 'compute'"),
    ({"filters": {"team": "platform"}}, "filters.team"),
    ({"group_by": ["squad"]}, "group_by.0"),
    ({"start_date": "last tuesday"}, "start_date\n  Input should be a valid date"),
    ({"end_date": "2026-02-30"}, "end_date\n  Input should be a valid date"),
    ({"start_date": "2026-05-20", "end_date": "2026-05-01"}, "start_date: 2026-05-20 is after end_date 2026-05-01"),
    ({"period": "last_week"}, "period\n  Input should be 'last_7_days'"),
    ({"top_n": 0}, "top_n\n  Input should be greater than or equal to 1"),
    ({"top_n": 101}, "top_n\n  Input should be less than or equal to 100"),
    ({"project": "web-app"}, "unknown argument(s) project; it takes: end_date, filters, group_by, period, start_date, top_n"),
])  # fmt: skip
def test_bad_arguments_are_tool_errors_naming_the_argument(mcp, arguments, expected) -> None:
    message = mcp.error("credits_breakdown", **arguments)
    assert message.startswith("Error executing tool credits_breakdown: ")
    assert expected in message


#: fct_credit_month_to_date is per project x team: a project's figures are its teams' sums.
PER_PROJECT = (
    "sum(mtd_credits) as mtd_credits, sum(forecast_credits) as forecast_credits, sum(forecast_usd) "
    "as forecast_usd, sum(previous_month_credits) as previous_month_credits from fct_credit_month_to_date"
)


def test_month_end_forecast_is_the_mart_per_project_and_in_total(mcp, q, truth) -> None:
    got = mcp.answer("month_end_forecast", top_n=2)
    direct = q(f"select org_id, project_slug, {PER_PROJECT} group by all order by forecast_credits desc, project_slug")
    assert got["month"] == {"as_of_date": "2026-05-31", "month_start": "2026-05-01", "month_end": "2026-05-31",
                            "days_elapsed": 31, "days_left": 0}  # fmt: skip
    assert [(r["project"], r["mtd_credits"], r["forecast_credits"], r["forecast_usd"]) for r in got["projects"]] == [
        (r["project_slug"], float(r["mtd_credits"]), float(r["forecast_credits"]), float(r["forecast_usd"]))
        for r in direct[:2]
    ]
    assert got["truncated"] and got["total"]["projects"] == len(direct) == 3
    assert got["total"]["forecast_credits"] == float(sum(r["forecast_credits"] for r in direct))
    assert got["total"]["mtd_credits"] == sum(_truth_by_project(truth, date(2026, 5, 1), AS_OF).values())
    assert got["orgs"] == [{k: v for k, v in got["total"].items()} | {"org_id": direct[0]["org_id"]}]


def test_month_end_forecast_of_one_project(mcp, q) -> None:
    got = mcp.answer("month_end_forecast", project="api-gateway")
    (row,) = q(f"select {PER_PROJECT} where project_slug = 'gh/acme-robotics/api-gateway'")
    assert got["project"] == "gh/acme-robotics/api-gateway" and not got["truncated"]
    assert got["total"]["forecast_credits"] == float(row["forecast_credits"])
    assert got["total"]["previous_month_credits"] == float(row["previous_month_credits"])
    assert "project: unknown project 'nope'" in mcp.error("month_end_forecast", project="nope")


def test_credits_by_team_follow_the_ownership_rules(mcp, q, truth, team_of) -> None:
    """The team dimension: the test rules applied in Python to the truth's job runs."""
    got = mcp.answer("credits_breakdown", group_by=["team"], period="all", top_n=100)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for j in truth.job_runs().to_pylist():
        expected[team_of(j["project_slug"], j["job_name"])] += j["total_credits"]
    assert {r["team"]: r["credits"] for r in got["rows"]} == {t: float(v) for t, v in expected.items()}
    assert set(expected) == {"quality", "release", "web", "unassigned"}
    one = mcp.answer("credits_breakdown", group_by=["project"], period="all", filters={"team": "quality"})
    by_project: dict[str, Decimal] = defaultdict(Decimal)
    for j in truth.job_runs().to_pylist():
        if team_of(j["project_slug"], j["job_name"]) == "quality":
            by_project[j["project_slug"]] += j["total_credits"]
    assert {r["project"]: r["credits"] for r in one["rows"]} == {p: float(v) for p, v in by_project.items()}
    assert "no credits recorded for team 'nobody'" in mcp.error("credits_breakdown", filters={"team": "nobody"})
