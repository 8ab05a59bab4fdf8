-- Incremental: the days from rebuild_from (macros/incremental_window.sql) are rebuilt.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='spend_date') }}

with

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}
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
        arg_max(project_name, started_at) as project_name,
        workflow_name,
        job_name,
        resource_class,
        executor,
        branch,
        count(*) as job_runs,
        sum(run_seconds) as run_seconds,
        sum(billed_minutes) as billed_minutes,
        sum(compute_credits) as compute_credits,
        sum(dlc_credits) as dlc_credits,
        sum(user_credits) as user_credits,
        sum(storage_credits) as storage_credits,
        sum(network_credits) as network_credits,
        sum(lease_credits) as lease_credits,
        sum(lease_overage_credits) as lease_overage_credits,
        sum(ipranges_credits) as ipranges_credits,
        sum(total_credits) as total_credits,
        sum(total_credits) * {{ price_per_credit() }} as total_usd,

    from job_runs
    group by spend_date, org_id, project_id, workflow_name, job_name, resource_class, executor, branch

)

select *, {{ owner_columns('job_name') }} from final
