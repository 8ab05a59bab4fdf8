-- Incremental: the days from rebuild_from (macros/incremental_window.sql) are rebuilt.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='spend_date') }}

with

job_runs as (

    select * from {{ ref('int_job_runs_enriched') }}
    {% if is_incremental() %}
    where job_run_date >= {{ rebuild_from('spend_date') }}
    {% endif %}

),

final as (

    select
        job_run_date as spend_date,
        org_id,
        project_id,
        any_value(project_slug) as project_slug,
        workflow_name,
        job_name,
        count(*) as job_runs,
        sum(total_credits) as total_credits,
        count(*) filter (where is_failed) as failed_job_runs,
        coalesce(sum(total_credits) filter (where is_failed), 0) as failed_credits,
        count(*) filter (where is_rerun) as rerun_job_runs,
        coalesce(sum(total_credits) filter (where is_rerun), 0) as rerun_credits,
        count(*) filter (where is_flaky_failure) as flaky_failure_job_runs,
        coalesce(sum(total_credits) filter (where is_flaky_failure), 0) as flaky_failure_credits,
        coalesce(sum(run_seconds) filter (where is_flaky_failure), 0) as flaky_failure_seconds,
        coalesce(sum(total_credits) filter (where is_failed), 0) * {{ price_per_credit() }} as failed_usd,
        coalesce(sum(total_credits) filter (where is_rerun), 0) * {{ price_per_credit() }} as rerun_usd,
        coalesce(sum(total_credits) filter (where is_flaky_failure), 0) * {{ price_per_credit() }} as flaky_failure_usd,

    from job_runs
    group by spend_date, org_id, project_id, workflow_name, job_name

)

select *, {{ owner_columns('job_name') }} from final
