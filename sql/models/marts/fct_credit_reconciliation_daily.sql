-- Usage-export vs Insights credits per project x workflow x day of the workflow run's
-- creation (export-only workflows: day of their first job run). Insights credits are not
-- billing-grade; the drift is reported, never corrected.
-- Incremental: the days from rebuild_from are rebuilt, from the workflows and job runs of
-- context_from on (a workflow's jobs run within lookback_days of its creation).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='run_date') }}

with

runs as (

    select * from {{ ref('fct_workflow_runs') }}
    where source in ('insights', 'both')
    {% if is_incremental() %}
        and run_date >= {{ context_from('run_date') }}
    {% endif %}

),

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}
    {% if is_incremental() %}
    where job_run_date >= {{ context_from('run_date') }}
    {% endif %}

),

workflow_usage as (

    select
        workflow_id,
        any_value(project_slug) as project_slug,
        any_value(workflow_name) as workflow_name,
        min(job_run_date) as first_job_date,
        sum(compute_credits) as compute_credits,
        sum(total_credits) as total_credits,

    from job_runs
    group by workflow_id

),

joined as (

    select
        coalesce(runs.project_slug, workflow_usage.project_slug) as project_slug,
        coalesce(runs.workflow_name, workflow_usage.workflow_name) as workflow_name,
        coalesce(runs.run_date, workflow_usage.first_job_date) as run_date,
        runs.workflow_id is not null as in_insights,
        workflow_usage.workflow_id is not null as in_export,
        runs.insights_credits,
        workflow_usage.compute_credits,
        workflow_usage.total_credits,

    from runs
    full outer join workflow_usage
        on runs.workflow_id = workflow_usage.workflow_id

),

final as (

    select
        project_slug,
        workflow_name,
        run_date,
        count(*) filter (where in_insights) as insights_workflow_runs,
        count(*) filter (where in_export) as export_workflow_runs,
        cast(coalesce(sum(insights_credits), 0) as decimal(38, 6)) as insights_credits,
        coalesce(sum(compute_credits), 0) as export_compute_credits,
        coalesce(sum(total_credits), 0) as export_total_credits,
        cast(coalesce(sum(insights_credits), 0) as decimal(38, 6)) - coalesce(sum(total_credits), 0) as drift_credits,
        cast(coalesce(sum(insights_credits), 0) as decimal(38, 6)) - coalesce(sum(compute_credits), 0) as compute_drift_credits,
        case
            when coalesce(sum(total_credits), 0) <> 0
                then (coalesce(sum(insights_credits), 0) - cast(sum(total_credits) as double)) / cast(sum(total_credits) as double)
        end as drift_pct,

    from joined
    {% if is_incremental() %}
    where run_date >= {{ rebuild_from('run_date') }}
    {% endif %}
    group by project_slug, workflow_name, run_date

)

select *, {{ owner_columns() }} from final
