-- Rollup of fct_credit_spend_daily to day x project x team x branch (workflow, job and resource class
-- summed out): the grain of the dashboard's credits-by-project chart and its branch filter.
-- Sums only, so every figure is the spend mart's, by construction.
-- Incremental: the days from rebuild_from (macros/incremental_window.sql) are rebuilt.
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
        branch,
        sum(job_runs) as job_runs,
        sum(total_credits) as total_credits,
        sum(total_usd) as total_usd,

    from spend
    group by spend_date, org_id, project_id, team, branch

)

select * from final
