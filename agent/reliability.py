"""Reliability tools: a workflow's weekly MTTR and success-rate trend, and the failure
streaks still open (`fct_workflow_health_weekly`, `fct_recoveries`, `dim_projects`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Reader, Warehouse
from circleci_analytics.agent.arguments import Project, TopN, bad, meta, read_only_tool, resolve_project

__all__ = ["register"]

_SCOPE = "project_slug = $project and workflow_name = $workflow and branch = $branch"

_WEEKLY = f"""
    with weeks as (
        select cast(unnest(generate_series(cast($first as timestamp), cast($last as timestamp), interval 7 day))
                    as date) as week_start
    ),
    health as (select * from fct_workflow_health_weekly where {_SCOPE})
    select
        weeks.week_start,
        weeks.week_start + 6 <= $as_of as is_complete_week,
        coalesce(health.runs, 0) as runs,
        coalesce(health.successful_runs, 0) as successful_runs,
        coalesce(health.failed_runs, 0) as failed_runs,
        health.success_rate,
        coalesce(health.throughput_runs_per_day, 0) as throughput_runs_per_day,
        coalesce(health.recoveries, 0) as recoveries,
        health.mttr_mean_seconds,
        health.mttr_median_seconds,
        health.duration_p50_seconds,
    from weeks
    left join health using (week_start)
    order by weeks.week_start
"""

_WINDOW = f"""
    select
        count(*) as recoveries,
        avg(recovery_seconds) as mttr_mean_seconds,
        quantile_cont(recovery_seconds, 0.5) as mttr_median_seconds,
    from fct_recoveries
    where {_SCOPE} and not is_open and recovery_week_start between $first and $last
"""

_OPEN_STREAKS = """
    with projects as (
        select project_slug, any_value(default_branch) as default_branch from dim_projects group by project_slug
    )
    select
        r.project_slug as project,
        r.workflow_name as workflow,
        r.branch,
        r.branch = projects.default_branch as on_default_branch,
        r.first_failed_stopped_at as failing_since,
        r.failed_runs,
        r.open_age_seconds,
        count(*) over () as streaks,
    from fct_recoveries as r
    left join projects using (project_slug)
    where r.is_open
        and ($project is null or r.project_slug = $project)
        and ($workflow is null or r.workflow_name = $workflow)
        and ($branch is null or r.branch = $branch)
        and (not $default_only or r.branch = projects.default_branch)
    order by r.open_age_seconds desc, project, workflow, r.branch
    limit $top_n
"""


def _open_streaks(db: Reader, *, project: str | None = None, workflow: str | None = None, branch: str | None = None,
                  default_only: bool = False, top_n: int = 100) -> list[dict[str, Any]]:  # fmt: skip
    return db.rows(_OPEN_STREAKS, project=project, workflow=workflow, branch=branch, default_only=default_only,
                   top_n=top_n)  # fmt: skip


def _scope(db: Reader, project: str, workflow: str, branch: str | None) -> tuple[str, str, str]:
    """(slug, workflow, branch) that exist; branch defaults to the project's default branch."""
    slug = resolve_project(db, project)
    assert slug is not None
    workflows = db.column("select workflow_name from fct_workflow_health_weekly where project_slug = $p "
                          "group by all order by sum(runs) desc, workflow_name", p=slug)  # fmt: skip
    if workflow not in workflows:
        raise bad("workflow", f"project {slug} has no workflow {workflow!r}", workflows)
    if branch is None:
        branch = db.column("select any_value(default_branch) from dim_projects where project_slug = $p", p=slug)[0]
        if branch is None:
            raise bad("branch", f"the default branch of {slug} is unknown (its projects row has not landed); pass one")
    branches = db.column("select branch from fct_workflow_health_weekly where project_slug = $p and workflow_name = $w "
                         "group by all order by sum(runs) desc, branch", p=slug, w=workflow)  # fmt: skip
    if branch not in branches:
        raise bad("branch", f"workflow {workflow!r} of {slug} never ran on branch {branch!r}", branches)
    return slug, workflow, branch


def register(server: MCPServer, warehouse: Warehouse) -> None:
    @read_only_tool(server)
    def mttr_trend(
        project: Annotated[str, Field(description="Project slug or name (see warehouse_overview).")],
        workflow: Annotated[str, Field(description="Workflow name, e.g. build-and-test.")],
        branch: Annotated[str | None, Field(description="Branch; default: the project's default branch.")] = None,
        weeks: Annotated[
            int, Field(ge=1, le=104, description="How many ISO weeks, ending with the week of as_of_date (1-104).")
        ] = 12,  # fmt: skip
    ) -> dict[str, Any]:
        """Weekly MTTR (mean time to recovery), recoveries and success rate of one workflow on one
        branch (default branch by default), over the last N ISO weeks, plus its open failure streak.

        A failure streak starts at a failed run (failed or error) after a success and ends at the
        next success; time to recover = stopped_at of the recovering success - stopped_at of the
        streak's first failure, in seconds; a recovery belongs to the week (Monday, UTC) its success
        stopped in; MTTR = mean (and median) of the times to recover in the period. success_rate =
        successes / (successes + failures), 0-1, null without either; canceled runs count only in
        runs. Weeks without runs are listed with zeros; the last week may be incomplete
        (is_complete_week). `window` sums the whole span. Open streaks (no success yet) are not in
        MTTR: they are listed with their age at the end of as_of_date.
        """
        with warehouse.read() as db:
            m = meta(db)
            slug, workflow, branch = _scope(db, project, workflow, branch)
            as_of = m["as_of_date"]
            last = as_of - dt.timedelta(days=as_of.weekday())
            first = last - dt.timedelta(weeks=weeks - 1)
            scope = {"project": slug, "workflow": workflow, "branch": branch}
            weekly = db.rows(_WEEKLY, first=first, last=last, as_of=as_of, **scope)
            window = db.one(_WINDOW, first=first, last=last, **scope)
            streaks = _open_streaks(db, project=slug, workflow=workflow, branch=branch)
        runs = sum(w["runs"] for w in weekly)
        decided = sum(w["successful_runs"] + w["failed_runs"] for w in weekly)
        return {
            "as_of_date": as_of.isoformat(),
            **scope,
            "weeks": weekly,
            "window": {
                "first_week_start": first.isoformat(),
                "last_week_start": last.isoformat(),
                "runs": runs,
                "success_rate": sum(w["successful_runs"] for w in weekly) / decided if decided else None,
                **(window or {}),
            },  # fmt: skip
            "open_failure_streaks": [
                {k: s[k] for k in ("failing_since", "failed_runs", "open_age_seconds")} for s in streaks
            ],  # fmt: skip
        }

    @read_only_tool(server)
    def open_failure_streaks(
        project: Project = None,
        default_branch_only: Annotated[
            bool, Field(description="Only streaks on each project's default branch.")
        ] = False,
        top_n: TopN = 20,
    ) -> dict[str, Any]:
        """Workflows that are red right now: failure streaks with no recovering success yet, oldest
        first, with the first failure's stop time, the failed runs so far and the age in seconds at
        the end of as_of_date (the warehouse's last complete day). One streak per project x
        workflow x branch at most.
        """
        with warehouse.read() as db:
            m = meta(db)
            slug = resolve_project(db, project)
            rows = _open_streaks(db, project=slug, default_only=default_branch_only, top_n=top_n)
        count = rows[0]["streaks"] if rows else 0
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "project": slug,
            "streaks": count,
            "truncated": count > len(rows),
            "open_failure_streaks": [{k: v for k, v in r.items() if k != "streaks"} for r in rows],
        }
