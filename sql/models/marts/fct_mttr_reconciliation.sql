-- Our MTTR over each Insights workflow-summary window [window_start, window_end) and scope,
-- rounded half-to-even to whole seconds, vs Insights' mttr. Insights builds streaks from
-- its retained runs (90 days); we use the whole lake, so a streak straddling the
-- retention edge can differ with real data.
with

summaries as (

    select * from {{ ref('stg_insights__workflow_summary') }}

),

recoveries as (

    select * from {{ ref('fct_recoveries') }}
    where not is_open

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

matched as (

    select
        summaries.snapshot_date,
        summaries.project_slug,
        summaries.workflow_name,
        summaries.scope,
        summaries.window_start,
        summaries.window_end,
        summaries.mttr_seconds as insights_mttr_seconds,
        count(recoveries.recovery_seconds) as warehouse_recoveries,
        avg(recoveries.recovery_seconds) as warehouse_mttr_mean_seconds,

    from summaries
    left join projects
        on summaries.project_slug = projects.project_slug
    left join recoveries
        on summaries.project_slug = recoveries.project_slug
        and summaries.workflow_name = recoveries.workflow_name
        and recoveries.recovered_at >= summaries.window_start
        and recoveries.recovered_at < summaries.window_end
        and (
            summaries.scope = 'all-branches'
            or (summaries.scope = 'default-branch' and recoveries.branch = projects.default_branch)
            or (summaries.scope not in ('all-branches', 'default-branch') and recoveries.branch = summaries.scope)
        )
    group by all

),

final as (

    select
        *,
        cast(round_even(warehouse_mttr_mean_seconds, 0) as bigint) as warehouse_mttr_seconds,
        cast(round_even(warehouse_mttr_mean_seconds, 0) as bigint) - insights_mttr_seconds as mttr_diff_seconds,
        insights_mttr_seconds is not distinct from cast(round_even(warehouse_mttr_mean_seconds, 0) as bigint) as matches,

    from matched

)

select *, {{ owner_columns() }} from final
