-- Branch activity: the 20 most active branches of each project (by credits of the trailing
-- 30 days, then workflow runs, then latest activity) and its default branch, from
-- fct_branch_activity (whole history and trailing 30 days). At most 21 rows per project:
-- a large organisation's 100k branches are never listed whole (the branch filter searches).
with ranked as (
    select
        *,
        row_number() over (
            partition by project_slug
            order by credits_30d desc, workflow_runs_30d desc, last_activity_at desc nulls last, branch
        ) as activity_rank,
    from fct_branch_activity
),

final as (
    select
        org_id,
        org_slug,
        team,
        project_slug,
        branch,
        is_default_branch,
        workflow_runs,
        workflow_runs_30d,
        successful_runs_30d,
        successful_runs_30d + failed_runs_30d as outcomes_30d,
        case
            when successful_runs_30d + failed_runs_30d > 0
                then successful_runs_30d / (successful_runs_30d + failed_runs_30d)
        end as success_rate_30d,
        success_rate,
        credits_30d,
        total_credits,
        last_activity_at,
    from ranked
    where activity_rank <= 20 or is_default_branch
)

select * from final order by credits_30d desc
