"""Right-sizing tool: resource-class recommendations and their projected monthly savings
(`fct_right_sizing`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Warehouse
from circleci_analytics.agent.arguments import Project, TopN, meta, read_only_tool, resolve_project

__all__ = ["register"]

#: `recommendation` argument -> the mart's recommendation values it keeps.
KEEP = {"downsize": ["downsize"], "upsize": ["upsize"], "change": ["downsize", "upsize"],
        "all": ["downsize", "upsize", "keep"]}  # fmt: skip

_SQL = """
    with sizing as (
        select * from fct_right_sizing
        where list_contains($kinds, recommendation) and ($project is null or project_slug = $project)
    )
    select
        project_slug as project, job_name as job, executor, resource_class, recommended_resource_class,
        recommendation, p95_max_cpu_pct, p95_max_ram_pct, job_runs, billed_minutes_30d,
        current_credits_per_minute, recommended_credits_per_minute,
        projected_monthly_savings_credits, projected_monthly_savings_usd,
        window_start_date, window_end_date,
        count(*) over () as jobs,
        sum(projected_monthly_savings_credits) over () as total_credits,
        sum(projected_monthly_savings_usd) over () as total_usd,
    from sizing
    order by abs(projected_monthly_savings_credits) desc, project, job, resource_class
    limit $top_n
"""


def register(server: MCPServer, warehouse: Warehouse) -> None:
    @read_only_tool(server)
    def right_sizing_savings(
        project: Project = None,
        recommendation: Annotated[
            Literal["downsize", "upsize", "change", "all"],
            Field(
                description="downsize (savings), upsize (under-provisioned jobs, negative savings), change "
                "(either) or all (keep too)."
            ),
        ] = "downsize",  # fmt: skip
        top_n: TopN = 10,
    ) -> dict[str, Any]:
        """Resource-class right-sizing: jobs whose resource class is too big (or too small), the class
        recommended, and the projected monthly savings in credits and USD, largest effect first.

        Over the trailing 30 days (as_of_date-29 .. as_of_date), per project x job x executor x
        resource class: p95 of the jobs' peak CPU % and RAM %; needed = p95 % x the class's
        vCPUs (RAM) / headroom (default 0.8); recommended = the cheapest class of the same family
        covering both. Savings = (current - recommended credits per minute) x billed minutes in
        the 30 days (ceil(run seconds / 60) x parallelism), standing for a month; negative = an
        upsize costs more. total_savings sums every matching job, not just those shown.
        """
        with warehouse.read() as db:
            m = meta(db)
            slug = resolve_project(db, project)
            rows = db.rows(_SQL, kinds=KEEP[recommendation], project=slug, top_n=top_n)
        first = rows[0] if rows else {"jobs": 0, "total_credits": 0.0, "total_usd": 0.0}
        totals = ("jobs", "total_credits", "total_usd")
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "headroom": m["headroom"],
            "project": slug,
            "recommendation": recommendation,
            "jobs": first["jobs"],
            "total_savings": {"credits": first["total_credits"], "usd": first["total_usd"]},
            "truncated": first["jobs"] > len(rows),
            "recommendations": [{k: v for k, v in r.items() if k not in totals} for r in rows],
        }
