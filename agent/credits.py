"""Credit tools: where the credits went over a period, and the month-end forecast.

Both read marts only (`fct_credit_spend_daily`, `fct_credit_month_to_date`) and only sum
their rows; the metric definitions are the marts' (`sql/marts`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Reader, Warehouse, jsonable
from circleci_analytics.agent.arguments import (
    EndDate,
    Period,
    Project,
    StartDate,
    TopN,
    bad,
    meta,
    read_only_tool,
    resolve_period,
    resolve_project,
)

__all__ = ["DIMENSIONS", "register"]

#: The dimensions credits can be grouped and filtered by: argument value -> column of
#: `fct_credit_spend_daily` (team: the owning team, from the ownership rules).
DIMENSIONS: dict[str, str] = {
    "project": "project_slug",
    "org": "org_id",
    "workflow": "workflow_name",
    "job": "job_name",
    "branch": "branch",
    "resource_class": "resource_class",
    "executor": "executor",
    "team": "team",
}
#: Not a column: the per-type credit columns (`<type>_credits`) unpivoted.
CREDIT_TYPE = "credit_type"
Dimension = Literal[(*DIMENSIONS, CREDIT_TYPE)]  # type: ignore[valid-type]

_SPEND = "fct_credit_spend_daily"


def _credit_types(db: Reader) -> list[str]:
    """The credit types, from the mart's `<type>_credits` columns (total excluded)."""
    cols = db.column("select distinct column_name from information_schema.columns where table_name = $t and "
                     "column_name like '%\\_credits' escape '\\' and column_name <> 'total_credits'", t=_SPEND)  # fmt: skip
    return sorted(c.removesuffix("_credits") for c in cols)


def _checked_filters(db: Reader, filters: dict[str, str], types: list[str]) -> dict[str, str]:
    """Filters with project names resolved to slugs; an unknown value is an error naming it."""
    out = {}
    for dim, value in filters.items():
        argument = f"filters.{dim}"
        if dim == CREDIT_TYPE:
            if value not in types:
                raise bad(argument, f"unknown credit type {value!r}", types)
        elif dim == "project":
            value = resolve_project(db, value, argument)
        else:
            col = DIMENSIONS[dim]
            if not db.raw(f"select 1 from {_SPEND} where {col} = $v limit 1", v=value):
                known = db.column(f"select {col} from {_SPEND} where {col} is not null group by all "
                                  "order by sum(total_credits) desc limit 16")  # fmt: skip
                raise bad(argument, f"no credits recorded for {dim} {value!r}", known)
        out[dim] = value
    return out


def _spend_sql(group_by: list[str], filters: dict[str, str], types: list[str]) -> str:
    """Credits and USD per group over [$start, $end], ranked, with the totals on every row."""
    by_type = CREDIT_TYPE in group_by or CREDIT_TYPE in filters
    dims = [d for d in group_by if d != CREDIT_TYPE]
    where = " and ".join(["spend_date between $start and $end",
                          *(f"{DIMENSIONS[d]} = $f_{d}" for d in filters if d != CREDIT_TYPE)])  # fmt: skip
    cols = "".join(f'{DIMENSIONS[d]} as "{d}", ' for d in dims)
    if by_type:
        per_type = ", ".join(f'{t}_credits as "{t}"' for t in types)
        names = ", ".join(f'"{t}"' for t in types)
        unpivoted = f"unpivot (select {cols}{per_type} from spend) on {names} into name credit_type value credits"
        amounts = f"select *, credits * (select price_per_credit from warehouse_meta) as usd from ({unpivoted})"
    else:
        amounts = f"select {cols}total_credits as credits, total_usd as usd from spend"
    type_filter = "where credit_type = $f_credit_type" if CREDIT_TYPE in filters else ""
    keys = "".join(f', "{d}"' for d in group_by)
    return f"""
        with spend as (select * from {_SPEND} where {where}),
        amounts as ({amounts}),
        grouped as (
            select {"".join(f'"{d}", ' for d in group_by)}sum(credits) as credits, sum(usd) as usd
            from amounts {type_filter} group by all
        )
        select *,
            round(credits / nullif(sum(credits) over (), 0), 4) as share,
            count(*) over () as groups,
            sum(credits) over () as total_credits,
            sum(usd) over () as total_usd,
        from grouped
        order by credits desc nulls last{keys}
        limit $top_n
    """


def register(server: MCPServer, warehouse: Warehouse) -> None:
    @read_only_tool(server)
    def credits_breakdown(
        group_by: Annotated[
            list[Dimension],
            Field(
                description="Dimensions to group by, in order (empty: the total only); credit_type splits "
                "credits by type (compute, dlc, user, storage, network, lease, ...)."
            ),
        ] = ["project"],  # noqa: B006
        period: Annotated[
            Period,
            Field(
                description="Named period ending at the warehouse's as_of_date "
                "(last_N_days include as_of_date; previous_month is the calendar month "
                "before as_of_date's)."
            ),
        ] = "last_30_days",  # fmt: skip
        start_date: StartDate = None,
        end_date: EndDate = None,
        filters: Annotated[
            dict[Dimension, str] | None,
            Field(
                description='Keep only these values, e.g. {"project": "gh/acme/web", "branch": "main"}; project '
                "accepts a slug or a project name."
            ),
        ] = None,  # fmt: skip
        top_n: TopN = 10,
    ) -> dict[str, Any]:
        """Credits and dollars spent over a period, grouped by project, org, workflow, job, branch,
        resource class, executor, team and/or credit type, largest first (top N, the rest summed as `other`).

        Answers "where did our credits go?". Credits are CircleCI's billing-grade credits from the
        usage export (one row per job run, attributed to the UTC day the job started); usd =
        credits x the warehouse's price_per_credit (default 0.0006 USD). A job's team is the first
        ownership rule (the owners file) matching its project and job name, else 'unassigned'. Default period: the last
        30 days up to as_of_date (the last complete day of data). `share` is the group's fraction
        of the period total. Numbers are floats.
        """
        group = list(dict.fromkeys(group_by))
        with warehouse.read() as db:
            m = meta(db)
            first_day = db.raw(f"select min(spend_date) as d from {_SPEND}")[0]["d"]
            start, end = resolve_period(period, start_date, end_date, m["as_of_date"], first_day)
            types = _credit_types(db)
            checked = _checked_filters(db, dict(filters or {}), types)
            rows = db.raw(_spend_sql(group, checked, types), start=start, end=end, top_n=top_n,
                          **{f"f_{d}": v for d, v in checked.items()})  # fmt: skip
        zero = Decimal(0)
        totals = rows[0] if rows else {"groups": 0, "total_credits": zero, "total_usd": zero}
        total_credits, total_usd = totals["total_credits"] or zero, totals["total_usd"] or zero
        other = None
        if totals["groups"] > len(rows):
            other = {"groups": totals["groups"] - len(rows),
                     "credits": total_credits - sum((r["credits"] or zero for r in rows), zero),
                     "usd": total_usd - sum((r["usd"] or zero for r in rows), zero)}  # fmt: skip
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "period": {"start_date": start.isoformat(), "end_date": end.isoformat(), "days": (end - start).days + 1},
            "group_by": group,
            "filters": checked,
            "price_per_credit": float(m["price_per_credit"]),
            "total": jsonable({"credits": total_credits, "usd": total_usd}),
            "groups": totals["groups"],
            "truncated": other is not None,
            "rows": [jsonable({k: r[k] for k in (*group, "credits", "usd", "share")}) for r in rows],
            "other": jsonable(other),
        }

    @read_only_tool(server)
    def month_end_forecast(project: Project = None, top_n: TopN = 10) -> dict[str, Any]:
        """Month-to-date credits and the month-end forecast, for the org(s) in total and per project
        (largest forecast first), for the month of the warehouse's as_of_date.

        Forecast = month-to-date credits + mean daily credits over the trailing 7 complete days
        (as_of_date-6 .. as_of_date, days without jobs count as 0) x days left in the month after
        as_of_date. Credits from the usage export; usd = credits x price_per_credit; floats.
        previous_month_credits is the whole previous calendar month, for comparison.
        """
        additive = ("mtd_credits", "mtd_usd", "trailing_7d_mean_daily_credits", "forecast_credits", "forecast_usd",
                    "previous_month_credits")  # fmt: skip
        sums = ", ".join(f"sum({c}) as {c}" for c in additive)
        with warehouse.read() as db:
            m = meta(db)
            slug = resolve_project(db, project)
            base = (
                f"select org_id, project_slug, as_of_date, month_start, month_end, days_elapsed, days_left, {sums} "
                "from fct_credit_month_to_date where $p is null or project_slug = $p group by all"
            )  # per project
            month = db.one("select distinct as_of_date, month_start, month_end, days_elapsed, days_left "
                           f"from ({base})", p=slug)  # fmt: skip
            total = db.one(f"select count(*) as projects, {sums} from ({base})", p=slug)
            assert total is not None  # an aggregate answers one row
            orgs = db.rows(f"select org_id, count(*) as projects, {sums} from ({base}) group by org_id "
                           "order by forecast_credits desc", p=slug)  # fmt: skip
            rows = db.rows(f"select org_id, project_slug as project, {', '.join(additive)} from ({base}) "
                           "order by forecast_credits desc, project_slug limit $n", p=slug, n=top_n)  # fmt: skip
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "month": month,
            "project": slug,
            "total": {k: (v if v is not None else 0.0) for k, v in total.items()},
            "orgs": orgs,
            "projects": rows,
            "truncated": total["projects"] > len(rows),
        }
