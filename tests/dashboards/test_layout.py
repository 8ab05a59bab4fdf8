"""Where each page's rows go: the unfiltered view of a chart (top series and "other"), a
project's and a branch shard's files, all adding up to the same figures."""

from __future__ import annotations

import math

import polars as pl
import pytest

from circleci_analytics.dashboards import PAGES, load_queries, run_query
from circleci_analytics.dashboards.layout import (
    OTHER,
    Filters,
    branch_rollup,
    branch_shard,
    chart_view,
    page_data,
    parts_json,
)

pytestmark = pytest.mark.xdist_group("dashboards")

CHART = {"id": "c", "type": "series", "x": "day", "date": "day", "series": ["project_slug"], "y": {"sum": "credits"}}


def _decode(payload: dict) -> pl.DataFrame:
    """A dataset payload back to rows (as assets/dashboard.js decodes it)."""
    cols = {}
    for name, values in payload["columns"].items():
        if isinstance(values, dict):
            codes = values.get("codes", [0] * payload["n"])
            values = [None if k is None else values["dict"][k] for k in codes]
        cols[name] = values
    return pl.DataFrame(cols)


def _frame() -> pl.DataFrame:
    rows = [(d, p, b, float(c)) for d in ("2026-05-01", "2026-05-02")
            for p, c in (("a", 50), ("b", 40), ("c", 3), ("d", 2)) for b in ("main", "x")]  # fmt: skip
    return pl.DataFrame(rows, schema=["day", "project_slug", "branch", "credits"], orient="row")


def test_chart_view_keeps_the_top_series_and_adds_the_rest_up_as_other():
    view = chart_view(branch_rollup(_frame(), [CHART]), CHART, top=2)
    assert sorted(view.filter(~pl.col("is_other")).get_column("project_slug").unique()) == ["a", "b"]
    other = view.filter(pl.col("is_other"))
    assert other.get_column("project_slug").unique().to_list() == [OTHER]
    assert dict(other.select("day", "credits").iter_rows()) == {
        "2026-05-01": 10.0,
        "2026-05-02": 10.0,
    }  # (3 + 2) x 2 branches
    assert view.get_column("credits").sum() == _frame().get_column("credits").sum()


def test_measures_that_do_not_add_up_get_no_other():
    frame = _frame().with_columns(pl.lit(True).alias("all_branches"), pl.col("credits").alias("p95"))
    chart = {**CHART, "y": {"sum": "p95"}, "rank": "credits", "branch_rollup": True}
    view = chart_view(branch_rollup(frame, [chart]), chart, top=2)
    assert not view.get_column("is_other").any() and set(view.get_column("project_slug")) == {"a", "b"}


def test_parts_round_trip_with_their_own_dictionaries():
    frame = _frame().with_columns(pl.col("branch").replace({"x": None}))
    parts = parts_json(frame, "project_slug")
    assert set(parts) == {"a", "b", "c", "d"}
    for project, payload in parts.items():
        expected = frame.filter(pl.col("project_slug") == project).drop("project_slug")
        assert _decode(payload).equals(expected), project
        assert payload["columns"]["day"]["dict"] == ["2026-05-01", "2026-05-02"]


def test_branch_shards_spread_names_and_are_stable():
    names = [f"feature/p{i}-{i * 7}" for i in range(2000)]
    shards = [branch_shard(n, 16) for n in names]
    assert min(shards.count(k) for k in range(16)) > 2000 / 16 / 2
    assert branch_shard("main", 256) == branch_shard("main", 256) == 8


def test_every_file_adds_up_to_the_query(con):
    """Per chart: the unfiltered view, the project files and the branch shards each hold
    every credit of credits_by_project (tiny warehouse)."""
    result = run_query(con, load_queries()["credits_by_project"])
    total = result.frame.get_column("credits").sum()
    projects = sorted(result.frame.get_column("project_slug").unique())
    filters = Filters.of(projects, result.frame.get_column("branch"))
    page = next(p for p in PAGES if p["slug"] == "credits")
    data = page_data(
        {**page, "elements": [{**e, "top": 1} for e in page["elements"]]}, {"credits_by_project": result}, filters
    )
    assert math.isclose(_decode(data.base["views"]["credits_project"]).get_column("credits").sum(), total, rel_tol=1e-9)
    by_project = [p["datasets"]["credits_by_project"] for k, p in data.on_demand.items() if "/project-" in k]
    assert len(by_project) == len(projects)
    assert math.isclose(sum(_decode(p).get_column("credits").sum() for p in by_project), total, rel_tol=1e-9)
    by_branch = [
        p["datasets"]["credits_by_project"] for k, p in data.on_demand.items() if "/branches-" in k and p["datasets"]
    ]
    per_branch = pl.concat([_decode(p) for p in by_branch])
    assert math.isclose(per_branch.get_column("credits").sum(), total, rel_tol=1e-9)
    for row in per_branch.select("branch").unique().iter_rows():
        key = f"credits/branches-{branch_shard(row[0], filters.shards)}"
        assert row[0] in _decode(data.on_demand[key]["datasets"]["credits_by_project"]).get_column("branch").to_list()


def test_scope_files_hold_each_org_and_team_share(con):
    """Each org, team and (org, team) scope file draws that scope's credits: the teams of an
    org add up to the org, every team's share is the mart's (tiny warehouse, test team rules)."""
    result = run_query(con, load_queries()["credits_by_project"])
    frame = result.frame
    filters = Filters.of(sorted(frame.get_column("project_slug").unique()), frame.get_column("branch"),
                         frame.select("org_slug", "team"))  # fmt: skip
    page = next(p for p in PAGES if p["slug"] == "credits")
    data = page_data(
        {**page, "elements": [{**e, "top": 1} for e in page["elements"]]}, {"credits_by_project": result}, filters
    )
    assert data.base["split"]["credits_by_project"]["scope"]
    drawn = {scope: _decode(data.on_demand[f"credits/scope-{i}"]["views"]["credits_project"]).get_column("credits").sum()
             for i, scope in enumerate(filters.scopes)}  # fmt: skip
    rows = con.execute("select org_slug, team, sum(total_credits)::double from fct_credit_spend_branch_daily "
                       "group by grouping sets ((org_slug), (team), (org_slug, team))").fetchall()  # fmt: skip
    expected = {(org or "", team or ""): credits for org, team, credits in rows}
    assert drawn.keys() == expected.keys() and len(drawn) == 2 + 4 + 6  # orgs, teams, pairs with rows
    for scope, credits in expected.items():
        assert math.isclose(drawn[scope], credits, rel_tol=1e-9), scope
