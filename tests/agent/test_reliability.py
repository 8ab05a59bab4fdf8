"""mttr_trend and open_failure_streaks over stdio, against fct_workflow_health_weekly,
fct_recoveries and the simulator's recoveries (MTTR to the second)."""

from __future__ import annotations

import statistics
from datetime import date, timedelta

import pytest

pytestmark = pytest.mark.xdist_group("agent")

WEB = "gh/acme-robotics/web-app"
WORKFLOW = "build & test/e2e"  # a name that needs quoting and percent-encoding


def test_mttr_trend_on_the_default_branch(mcp, q, truth) -> None:
    got = mcp.answer("mttr_trend", project="web-app", workflow=WORKFLOW, weeks=6)
    assert (got["project"], got["workflow"], got["branch"]) == (WEB, WORKFLOW, "main")
    weeks = [date(2026, 5, 25) - timedelta(weeks=n) for n in range(5, -1, -1)]
    assert [w["week_start"] for w in got["weeks"]] == [w.isoformat() for w in weeks]
    assert [w["is_complete_week"] for w in got["weeks"]] == [True] * 6  # 2026-05-31 is a Sunday
    health = {r["week_start"].isoformat(): r for r in q(
        "select * from fct_workflow_health_weekly where project_slug = ? and workflow_name = ? and branch = 'main'",
        WEB, WORKFLOW)}  # fmt: skip
    mttr = truth.mttr_weekly()
    for w in got["weeks"]:
        h = health.get(w["week_start"])
        assert w["runs"] == (h["runs"] if h else 0)
        assert w["success_rate"] == (h["success_rate"] if h else None)
        expected = mttr.get((WEB, WORKFLOW, "main", date.fromisoformat(w["week_start"])))
        assert w["recoveries"] == (expected["recoveries"] if expected else 0)
        assert w["mttr_mean_seconds"] == (expected["mean_seconds"] if expected else None)
        assert w["mttr_median_seconds"] == (expected["median_seconds"] if expected else None)
    seconds = [r.seconds for r in truth.recoveries() if (r.project_slug, r.workflow_name, r.branch) == (WEB, WORKFLOW, "main")
               and r.recovered_at and weeks[0] <= r.recovered_at.date() <= date(2026, 5, 31)]  # fmt: skip
    window = got["window"]
    assert window["recoveries"] == len(seconds) == sum(w["recoveries"] for w in got["weeks"]) > 0
    assert window["mttr_mean_seconds"] == pytest.approx(statistics.fmean(seconds))
    assert window["mttr_median_seconds"] == statistics.median(seconds)
    assert window["runs"] == sum(w["runs"] for w in got["weeks"])


def test_mttr_trend_on_a_branch_with_an_open_streak(mcp, q) -> None:
    got = mcp.answer("mttr_trend", project=WEB, workflow=WORKFLOW, branch="feature/payments-v2")
    assert len(got["weeks"]) == 12 and got["weeks"][0]["week_start"] == "2026-03-09"
    (streak,) = q("select * from fct_recoveries where is_open and project_slug = ? and workflow_name = ? "
                  "and branch = 'feature/payments-v2'", WEB, WORKFLOW)  # fmt: skip
    assert got["open_failure_streaks"] == [{
        "failing_since": streak["first_failed_stopped_at"].isoformat().replace("+00:00", "Z"),
        "failed_runs": streak["failed_runs"], "open_age_seconds": streak["open_age_seconds"]}]  # fmt: skip


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"project": "nope", "workflow": WORKFLOW}, "project: unknown project 'nope'"),
    ({"project": WEB, "workflow": "nope"}, "workflow: project gh/acme-robotics/web-app has no workflow 'nope'; "
                                          "known: 'build & test/e2e', 'deploy'"),
    ({"project": WEB, "workflow": "deploy", "branch": "dev"}, "branch: workflow 'deploy' of gh/acme-robotics/web-app "
                                                              "never ran on branch 'dev'; known: 'main'"),
    ({"project": WEB, "workflow": WORKFLOW, "weeks": 0}, "weeks\n  Input should be greater than or equal to 1"),
    ({"project": WEB}, "workflow\n  Field required"),
])  # fmt: skip
def test_mttr_trend_bad_arguments(mcp, arguments, expected) -> None:
    assert expected in mcp.error("mttr_trend", **arguments)


def test_open_failure_streaks_are_fct_recoveries_open_rows(mcp, q, truth) -> None:
    got = mcp.answer("open_failure_streaks")
    direct = q("select * from fct_recoveries where is_open order by open_age_seconds desc")
    assert got["streaks"] == len(direct) == sum(r.recovered_at is None for r in truth.recoveries()) > 0
    assert [(s["project"], s["workflow"], s["branch"], s["failed_runs"], s["open_age_seconds"])
            for s in got["open_failure_streaks"]] == [
        (r["project_slug"], r["workflow_name"], r["branch"], r["failed_runs"], r["open_age_seconds"]) for r in direct
    ]  # fmt: skip
    assert [s["on_default_branch"] for s in got["open_failure_streaks"]] == [False] * len(direct)
    assert mcp.answer("open_failure_streaks", default_branch_only=True)["open_failure_streaks"] == []
