-- Usage-export job runs with the project slug, the re-run attempt of their workflow and
-- derived measures; only the columns the marts use (this is the widest table). A workflow
-- is a re-run when an earlier workflow of the same name ran in the same pipeline (ordered
-- by the first start of their job runs). project_slug comes from int_projects_unioned (one
-- row per project_id), so it is a function of project_id: models grouping by project_id
-- take any_value(project_slug), which is exact and cheaper than arg_max.
-- Incremental (macros/incremental_window.sql): the days from rebuild_from are rebuilt; the
-- attempts of their workflows also count the earlier workflows of the same pipelines.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='job_run_date') }}

with

job_runs as (

    select * from {{ ref('stg_usage__job_runs') }}
    {% if is_incremental() %}
    where job_run_date >= {{ context_from('job_run_date') }}
        and {{ from_day_on('started_at', context_from('job_run_date')) }}
    {% endif %}

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

-- The workflow columns of the job runs. A full build reads them again (a CTE read twice would
-- be buffered whole: every job run); an incremental build reads its few days once.
run_workflows as (

    {% if is_incremental() %}
    select workflow_id, pipeline_id, workflow_name, started_at
    from job_runs
    {% else %}
    select workflow_id, pipeline_id, workflow_name, started_at
    from {{ ref('stg_usage__job_runs') }}
    {% endif %}

),

workflow_starts as (

    select * from run_workflows
    {% if is_incremental() %}

    union all

    select workflow_id, pipeline_id, workflow_name, started_at
    from {{ this }}
    where job_run_date < {{ context_from('job_run_date') }}
        and pipeline_id in (select pipeline_id from run_workflows)
    {% endif %}

),

workflow_attempts as (

    select
        workflow_id,
        row_number() over (
            partition by coalesce(pipeline_id, workflow_id), workflow_name
            order by min(started_at), workflow_id
        ) as rerun_attempt,

    from workflow_starts
    group by workflow_id, pipeline_id, workflow_name

),

final as (

    select
        job_runs.job_id,
        job_runs.org_id,
        job_runs.project_id,
        job_runs.project_name,
        job_runs.pipeline_id,
        job_runs.pipeline_number,
        job_runs.branch,
        job_runs.workflow_id,
        job_runs.workflow_name,
        job_runs.pipeline_created_at,
        job_runs.workflow_first_job_queued_at,
        job_runs.workflow_stopped_at,
        job_runs.is_workflow_successful,
        job_runs.job_name,
        job_runs.job_number,
        job_runs.job_run_date,
        job_runs.queued_at,
        job_runs.started_at,
        job_runs.stopped_at,
        job_runs.job_status,
        job_runs.resource_class,
        job_runs.operating_system,
        job_runs.executor,
        job_runs.parallelism,
        job_runs.run_seconds,
        job_runs.median_cpu_pct,
        job_runs.max_cpu_pct,
        job_runs.median_ram_pct,
        job_runs.max_ram_pct,
        job_runs.compute_credits,
        job_runs.dlc_credits,
        job_runs.user_credits,
        job_runs.storage_credits,
        job_runs.network_credits,
        job_runs.lease_credits,
        job_runs.lease_overage_credits,
        job_runs.ipranges_credits,
        job_runs.total_credits,
        job_runs.export_window_start,
        job_runs.export_window_end,
        job_runs.extracted_at,
        projects.project_slug,
        workflow_attempts.rerun_attempt,
        workflow_attempts.rerun_attempt > 1 as is_rerun,
        job_runs.job_status in ('failed', 'infrastructure_fail') as is_failed,
        (epoch_ms(job_runs.started_at) - epoch_ms(job_runs.queued_at)) / 1000.0 as queue_seconds,
        cast(ceil(job_runs.run_seconds / 60.0) * coalesce(job_runs.parallelism, 1) as bigint) as billed_minutes,

    from job_runs
    left join projects
        on job_runs.project_id = projects.project_id
    left join workflow_attempts
        on job_runs.workflow_id = workflow_attempts.workflow_id
    {% if is_incremental() %}
    where job_runs.job_run_date >= {{ rebuild_from('job_run_date') }}
    {% endif %}

)

select * from final
