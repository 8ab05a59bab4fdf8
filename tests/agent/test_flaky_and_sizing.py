"""top_flaky_tests and right_sizing_savings over stdio, against fct_flaky_tests (+ the
CircleCI comparison), fct_right_sizing and the simulator's flaky-test truth."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("agent")


def _iso(ts) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_top_flaky_tests_by_credits_wasted(mcp, q, truth) -> None:
    got = mcp.answer("top_flaky_tests", top_n=3)
    direct = q("select f.*, c.agreement from fct_flaky_tests f left join fct_flaky_tests_vs_circleci c "
               "using (project_slug, job_name, classname, test_name) "
               "order by f.credits_wasted desc nulls last, f.times_flaked desc")  # fmt: skip
    assert got["tests"] == len(direct) == len(truth.flaky_tests()) and got["truncated"]
    assert got["total_credits_wasted"] == float(sum(r["credits_wasted"] or 0 for r in direct))
    shown = got["tests_shown"]
    assert [(t["project"], t["job"], t["classname"], t["test_name"]) for t in shown] == [
        (r["project_slug"], r["job_name"], r["classname"], r["test_name"]) for r in direct[:3]
    ]
    for t, r in zip(shown, direct, strict=False):
        assert (t["credits_wasted"], t["usd_wasted"], t["times_flaked"]) == (
            float(r["credits_wasted"]),
            float(r["usd_wasted"]),
            r["times_flaked"],
        )
        assert t["circleci_agreement"] == r["agreement"]
        e = truth.flaky_tests()[(t["project"], t["job"], t["classname"], t["test_name"])]
        assert (t["times_flaked"], t["last_flake_at"], t["currently_flaky"]) == (
            e["times_flaked"],
            _iso(e["last_flake_at"]),
            e["currently_flaky"],
        )


def test_currently_flaky_by_times_flaked_in_one_project(mcp, q, truth) -> None:
    got = mcp.answer("top_flaky_tests", project="web-app", currently_flaky_only=True, order_by="times_flaked",
                     top_n=100)  # fmt: skip
    expected = {k: v for k, v in truth.flaky_tests().items()
                if k[0] == "gh/acme-robotics/web-app" and v["currently_flaky"]}  # fmt: skip
    assert expected and not got["truncated"] and got["project"] == "gh/acme-robotics/web-app"
    assert {(t["project"], t["job"], t["classname"], t["test_name"]) for t in got["tests_shown"]} == set(expected)
    counts = [t["times_flaked"] for t in got["tests_shown"]]
    assert counts == sorted(counts, reverse=True)
    # Every currently flaky test is in the CircleCI comparison (both, or warehouse_only).
    assert all(t["circleci_agreement"] in ("both", "warehouse_only") for t in got["tests_shown"])


def test_most_recently_flaked_first(mcp) -> None:
    got = mcp.answer("top_flaky_tests", order_by="last_flaked", top_n=100)["tests_shown"]
    assert [t["last_flake_at"] for t in got] == sorted((t["last_flake_at"] for t in got), reverse=True)
    assert "order_by\n  Input should be" in mcp.error("top_flaky_tests", order_by="cost")


def test_right_sizing_downsizes_with_savings(mcp, q) -> None:
    got = mcp.answer("right_sizing_savings", top_n=2)
    direct = q("select * from fct_right_sizing where recommendation = 'downsize' "
               "order by abs(projected_monthly_savings_credits) desc")  # fmt: skip
    assert got["jobs"] == len(direct) == 3 and got["truncated"] and got["headroom"] == 0.8
    assert got["total_savings"]["credits"] == sum(r["projected_monthly_savings_credits"] for r in direct) > 0
    assert [(r["project"], r["job"], r["resource_class"], r["recommended_resource_class"],
             r["projected_monthly_savings_credits"], r["projected_monthly_savings_usd"]) for r in got["recommendations"]] == [
        (r["project_slug"], r["job_name"], r["resource_class"], r["recommended_resource_class"],
         r["projected_monthly_savings_credits"], r["projected_monthly_savings_usd"]) for r in direct[:2]
    ]  # fmt: skip
    # The simulator plants an over-provisioned lint job.
    assert any(r["job"] == "lint" for r in got["recommendations"])


def test_right_sizing_upsizes_cost_and_filters(mcp, q) -> None:
    got = mcp.answer("right_sizing_savings", recommendation="change", project="gh/acme-robotics/api-gateway",
                     top_n=100)  # fmt: skip
    direct = q("select * from fct_right_sizing where recommendation <> 'keep' "
               "and project_slug = 'gh/acme-robotics/api-gateway'")  # fmt: skip
    assert got["jobs"] == len(direct) and {r["recommendation"] for r in got["recommendations"]} <= {
        "downsize",
        "upsize",
    }
    assert all((r["projected_monthly_savings_credits"] < 0) == (r["recommendation"] == "upsize")
               for r in got["recommendations"])  # fmt: skip
    assert "recommendation\n  Input should be" in mcp.error("right_sizing_savings", recommendation="shrink")
