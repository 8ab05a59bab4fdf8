"""Flaky-test tool: the flaky tests that cost the most, and whether CircleCI lists them too
(`fct_flaky_tests` joined to `fct_flaky_tests_vs_circleci`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Warehouse
from circleci_analytics.agent.arguments import Project, TopN, meta, read_only_tool, resolve_project

__all__ = ["register"]

#: `order_by` argument -> column of fct_flaky_tests (all sorted largest / latest first).
ORDER = {"credits_wasted": "credits_wasted", "times_flaked": "times_flaked", "last_flaked": "last_flake_at",
         "flip_rate": "flip_rate_smoothed"}  # fmt: skip

_SQL = """
    with flaky as (
        select * from fct_flaky_tests
        where ($project is null or project_slug = $project) and (not $current_only or currently_flaky)
    ),
    circleci as (select * from fct_flaky_tests_vs_circleci)
    select
        flaky.project_slug as project, flaky.job_name as job, flaky.classname, flaky.test_name, flaky.file,
        flaky.times_flaked, flaky.commits_flaked, flaky.runs, flaky.failures,
        flaky.flip_rate_smoothed, flaky.first_flake_at, flaky.last_flake_at, flaky.currently_flaky,
        flaky.flaky_job_failures, flaky.credits_wasted, flaky.usd_wasted, flaky.job_seconds_wasted,
        flaky.time_wasted_seconds,
        circleci.agreement as circleci_agreement,
        circleci.circleci_times_flaked,
        circleci.circleci_snapshot_date,
        count(*) over () as tests,
        sum(flaky.credits_wasted) over () as total_credits_wasted,
        sum(flaky.usd_wasted) over () as total_usd_wasted,
    from flaky
    left join circleci
        on flaky.project_slug = circleci.project_slug
        and flaky.job_name is not distinct from circleci.job_name
        and flaky.classname is not distinct from circleci.classname
        and flaky.test_name = circleci.test_name
    order by {order} desc nulls last, flaky.times_flaked desc, project, job, flaky.classname, flaky.test_name
    limit $top_n
"""


def register(server: MCPServer, warehouse: Warehouse) -> None:
    @read_only_tool(server)
    def top_flaky_tests(
        project: Project = None,
        currently_flaky_only: Annotated[
            bool, Field(description="Only tests that flaked in the 14 days up to as_of_date (CircleCI's window).")
        ] = False,
        order_by: Annotated[
            Literal["credits_wasted", "times_flaked", "last_flaked", "flip_rate"],
            Field(description="Rank by credits wasted, times flaked, latest flake or smoothed flip rate."),
        ] = "credits_wasted",
        top_n: TopN = 10,
    ) -> dict[str, Any]:
        """The flaky tests that waste the most credits (or flake most often / most recently), with
        how often they flaked, when they last flaked and whether CircleCI's own flaky list agrees.

        A test (project x job x classname x test name) flaked on a commit when it both passed and
        failed on it; times_flaked = its failed results on such commits; currently_flaky = last
        flake within 14 days of as_of_date. credits_wasted / usd_wasted / job_seconds_wasted are
        its equal share of its flaky job failures (failed job runs whose failing tests all flaked
        on that commit); time_wasted_seconds is the test's own run time in them (CircleCI's
        measure). circleci_agreement compares currently flaky tests with CircleCI's flaky-test list
        (its latest snapshot): both = CircleCI lists it too; warehouse_only = CircleCI does not (or
        has no snapshot for the project); null = not currently flaky here and not on CircleCI's
        list. Counts are over the whole history in the warehouse.
        """
        with warehouse.read() as db:
            m = meta(db)
            slug = resolve_project(db, project)
            rows = db.rows(_SQL.format(order=f"flaky.{ORDER[order_by]}"), project=slug,
                           current_only=currently_flaky_only, top_n=top_n)  # fmt: skip
        first = rows[0] if rows else {"tests": 0, "total_credits_wasted": 0.0, "total_usd_wasted": 0.0}
        totals = ("tests", "total_credits_wasted", "total_usd_wasted")
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "project": slug,
            "order_by": order_by,
            **{k: first[k] for k in totals},
            "truncated": first["tests"] > len(rows),
            "tests_shown": [{k: v for k, v in r.items() if k not in totals} for r in rows],
        }
