-- Insights workflow runs (all branches) with their outcome, plus what the usage export
-- knows of them (pipeline, re-run flag, executed job runs, credits, queue time).
-- Incremental: the days from rebuild_from (macros/incremental_window.sql) are rebuilt.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='run_date') }}

with

runs as (

    select * from {{ ref('stg_insights__workflow_runs') }}
    {% if is_incremental() %}
    where cast(created_at as date) >= {{ rebuild_from('run_date') }}
        and {{ from_day_on('created_at', rebuild_from('run_date')) }}
    {% endif %}

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}
    {% if is_incremental() %}
    where job_run_date >= {{ rebuild_from('run_date') }}
    {% endif %}

),

workflow_usage as (

    select
        workflow_id,
        any_value(pipeline_id) as pipeline_id,
        bool_or(is_rerun) as is_rerun,
        count(*) as executed_job_runs,
        sum(total_credits) as export_total_credits,
        avg(queue_seconds) as mean_job_queue_seconds,

    from job_runs
    group by workflow_id

),

final as (

    select
        runs.workflow_id,
        runs.project_slug,
        runs.workflow_name,
        runs.branch,
        runs.branch = projects.default_branch as is_default_branch,
        runs.status,
        case
            when runs.status = 'success' then 'success'
            when runs.status in ('failed', 'error') then 'failure'
            else 'other'
        end as outcome,
        runs.created_at,
        runs.stopped_at,
        cast(runs.created_at as date) as run_date,
        runs.duration_seconds,
        runs.is_approval,
        runs.insights_credits,
        workflow_usage.pipeline_id,
        workflow_usage.is_rerun,
        coalesce(workflow_usage.executed_job_runs, 0) as executed_job_runs,
        workflow_usage.export_total_credits,
        workflow_usage.mean_job_queue_seconds,

    from runs
    left join projects
        on runs.project_slug = projects.project_slug
    left join workflow_usage
        on runs.workflow_id = workflow_usage.workflow_id

)

select *, {{ owner_columns() }} from final
