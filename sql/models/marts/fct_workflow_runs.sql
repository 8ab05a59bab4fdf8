-- Every workflow run of the whole exported history: Insights workflow runs (all branches) and
-- the runs the usage export carries (one WORKFLOW_ID, from its job runs), joined on the
-- workflow id. Where Insights has the run its status, creation and stop times win; a run
-- only in the export takes its outcome from IS_WORKFLOW_SUCCESSFUL (success or failure: the
-- export cannot tell failed from canceled) and, having no creation time, its pipeline's
-- (README: Workflow runs from the usage export). `source` says which.
-- Incremental: the days from rebuild_from (macros/incremental_window.sql) are rebuilt. A run's
-- job runs start after its pipeline was created, so the job runs from rebuild_from hold every
-- job of the runs dated from rebuild_from on; runs of older pipelines are left as stored.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='run_date') }}

with

insights_runs as (

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

-- One row per WORKFLOW_ID; its workflow columns are the same on every job run (the latest
-- extraction's where an export was re-read).
export_runs as (

    select
        workflow_id,
        any_value(project_slug) as project_slug,
        any_value(workflow_name) as workflow_name,
        any_value(branch) as branch,
        any_value(pipeline_id) as pipeline_id,
        min(pipeline_created_at) as pipeline_created_at,
        min(workflow_first_job_queued_at) as first_job_queued_at,
        min(started_at) as first_job_started_at,
        arg_max(workflow_stopped_at, extracted_at) as stopped_at,
        arg_max(is_workflow_successful, extracted_at) as is_successful,
        bool_or(is_rerun) as is_rerun,
        count(*) as executed_job_runs,
        sum(total_credits) as export_total_credits,
        avg(queue_seconds) as mean_job_queue_seconds,

    from job_runs
    group by workflow_id

),

joined as (

    select
        coalesce(insights_runs.workflow_id, export_runs.workflow_id) as workflow_id,
        case
            when export_runs.workflow_id is null then 'insights'
            when insights_runs.workflow_id is null then 'usage_export'
            else 'both'
        end as source,
        coalesce(insights_runs.project_slug, export_runs.project_slug) as project_slug,
        coalesce(insights_runs.workflow_name, export_runs.workflow_name) as workflow_name,
        coalesce(insights_runs.branch, export_runs.branch) as branch,
        insights_runs.status,
        case
            when insights_runs.workflow_id is not null then
                case
                    when insights_runs.status = 'success' then 'success'
                    when insights_runs.status in ('failed', 'error') then 'failure'
                    else 'other'
                end
            when export_runs.is_successful then 'success'
            when not export_runs.is_successful then 'failure'
            else 'other'
        end as outcome,
        case
            when export_runs.is_successful then 'success'
            when not export_runs.is_successful then 'failure'
        end as export_outcome,
        -- an export without the workflow columns: the first start of its job runs
        coalesce(
            insights_runs.created_at,
            export_runs.pipeline_created_at,
            export_runs.first_job_queued_at,
            export_runs.first_job_started_at
        ) as created_at,
        coalesce(insights_runs.stopped_at, export_runs.stopped_at) as stopped_at,
        export_runs.stopped_at as export_stopped_at,
        coalesce(
            insights_runs.duration_seconds,
            (epoch_ms(export_runs.stopped_at) - epoch_ms(export_runs.first_job_queued_at)) // 1000
        ) as duration_seconds,
        insights_runs.is_approval,
        insights_runs.insights_credits,
        export_runs.pipeline_id,
        export_runs.pipeline_created_at,
        export_runs.first_job_queued_at,
        export_runs.is_rerun,
        coalesce(export_runs.executed_job_runs, 0) as executed_job_runs,
        export_runs.export_total_credits,
        export_runs.mean_job_queue_seconds,

    from insights_runs
    full outer join export_runs
        on insights_runs.workflow_id = export_runs.workflow_id

),

final as (

    select
        joined.workflow_id,
        joined.source,
        projects.org_id,
        joined.project_slug,
        joined.workflow_name,
        joined.branch,
        joined.branch = projects.default_branch as is_default_branch,
        joined.status,
        joined.outcome,
        joined.export_outcome,
        joined.created_at,
        joined.stopped_at,
        joined.export_stopped_at,
        cast(joined.created_at as date) as run_date,
        joined.duration_seconds,
        joined.is_approval,
        joined.insights_credits,
        joined.pipeline_id,
        joined.pipeline_created_at,
        joined.first_job_queued_at,
        joined.is_rerun,
        joined.executed_job_runs,
        joined.export_total_credits,
        joined.mean_job_queue_seconds,

    from joined
    left join projects
        on joined.project_slug = projects.project_slug
    {% if is_incremental() %}
    -- runs of pipelines created before rebuild_from are partly read here and stay as stored
    where cast(joined.created_at as date) >= {{ rebuild_from('run_date') }}
    {% endif %}

)

select *, {{ owner_columns() }} from final
