-- MTTR per week of the recovering success (open streaks excluded).
with

recoveries as (

    select * from {{ ref('fct_recoveries') }}
    where not is_open

),

final as (

    select
        project_slug,
        workflow_name,
        branch,
        recovery_week_start as week_start,
        count(*) as recoveries,
        avg(recovery_seconds) as mttr_mean_seconds,
        quantile_cont(recovery_seconds, 0.5) as mttr_median_seconds,

    from recoveries
    group by project_slug, workflow_name, branch, recovery_week_start

)

select *, {{ owner_columns() }} from final
