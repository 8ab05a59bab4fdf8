-- Incremental: the weeks from the week of rebuild_from (macros/incremental_window.sql) are
-- rebuilt. A week's runs are those created in it, and a recovery belongs to the week its
-- recovering success stopped, after it was created: neither changes for older weeks.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='week_start') }}

with

runs as (

    select * from {{ ref('fct_workflow_runs') }}
    {% if is_incremental() %}
    where run_date >= cast(date_trunc('week', {{ rebuild_from('week_start') }}) as date)
    {% endif %}

),

mttr as (

    select * from {{ ref('fct_mttr_weekly') }}
    {% if is_incremental() %}
    where week_start >= cast(date_trunc('week', {{ rebuild_from('week_start') }}) as date)
    {% endif %}

),

weekly as (

    select
        project_slug,
        workflow_name,
        branch,
        cast(date_trunc('week', created_at) as date) as week_start,
        count(*) as runs,
        count(*) filter (where outcome = 'success') as successful_runs,
        count(*) filter (where outcome = 'failure') as failed_runs,
        count(*) filter (where outcome = 'other') as other_runs,
        quantile_cont(duration_seconds, 0.5) filter (where outcome = 'success') as duration_p50_seconds,
        quantile_cont(duration_seconds, 0.95) filter (where outcome = 'success') as duration_p95_seconds,
        avg(mean_job_queue_seconds) as mean_job_queue_seconds,

    from runs
    group by all

),

final as (

    select
        coalesce(weekly.project_slug, mttr.project_slug) as project_slug,
        coalesce(weekly.workflow_name, mttr.workflow_name) as workflow_name,
        coalesce(weekly.branch, mttr.branch) as branch,
        coalesce(weekly.week_start, mttr.week_start) as week_start,
        coalesce(weekly.runs, 0) as runs,
        coalesce(weekly.successful_runs, 0) as successful_runs,
        coalesce(weekly.failed_runs, 0) as failed_runs,
        coalesce(weekly.other_runs, 0) as other_runs,
        case
            when weekly.successful_runs + weekly.failed_runs > 0
                then weekly.successful_runs / (weekly.successful_runs + weekly.failed_runs)
        end as success_rate,
        coalesce(weekly.runs, 0) / 7 as throughput_runs_per_day,
        weekly.duration_p50_seconds,
        weekly.duration_p95_seconds,
        weekly.mean_job_queue_seconds,
        coalesce(mttr.recoveries, 0) as recoveries,
        mttr.mttr_mean_seconds,
        mttr.mttr_median_seconds,

    from weekly
    full outer join mttr
        on weekly.project_slug = mttr.project_slug
        and weekly.workflow_name = mttr.workflow_name
        and weekly.branch is not distinct from mttr.branch
        and weekly.week_start = mttr.week_start

)

select *, {{ owner_columns() }} from final
