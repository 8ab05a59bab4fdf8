-- Job queue time (started_at - queued_at) per ISO week x project, per branch and for all
-- branches together (all_branches = true, branch null): percentiles do not add up, so both
-- are computed here, linear-interpolated (quantile_cont), over every job run with a queue time.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='week_start') }}

with

job_runs as (

    select
        cast(date_trunc('week', job_run_date) as date) as week_start,
        org_id,
        project_id,
        project_slug,
        branch,
        queue_seconds,
    from {{ ref('int_job_runs_keyed') }}
    where queue_seconds is not null
    {% if is_incremental() %}
        and job_run_date >= cast(date_trunc('week', {{ rebuild_from('week_start') }}) as date)
    {% endif %}

),

weekly as (

    select
        week_start,
        org_id,
        project_id,
        any_value(project_slug) as project_slug,
        branch,
        grouping(branch) = 1 as all_branches,
        count(*) as job_runs,
        avg(queue_seconds) as queue_mean_seconds,
        quantile_cont(queue_seconds, 0.5) as queue_p50_seconds,
        quantile_cont(queue_seconds, 0.95) as queue_p95_seconds,

    from job_runs
    group by grouping sets ((week_start, org_id, project_id, branch), (week_start, org_id, project_id))

),

final as (

    select * from weekly

)

select *, {{ owner_columns() }} from final
