-- Rollup of fct_credit_spend_daily to day x project x team x executor x resource class (workflow,
-- job and branch summed out): the grain the dashboard's credit charts plot. Sums only, so
-- every figure is the spend mart's, by construction.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='spend_date') }}

with

spend as (

    select * from {{ ref('fct_credit_spend_daily') }}
    {% if is_incremental() %}
    where spend_date >= {{ rebuild_from('spend_date') }}
    {% endif %}

),

final as (

    select
        spend_date,
        org_id,
        project_id,
        any_value(project_slug) as project_slug,
        any_value(org_slug) as org_slug,
        team,
        executor,
        resource_class,
        sum(job_runs) as job_runs,
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
        sum(total_usd) as total_usd,

    from spend
    group by spend_date, org_id, project_id, team, executor, resource_class

)

select * from final
