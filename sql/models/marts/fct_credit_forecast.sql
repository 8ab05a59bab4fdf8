-- Month-to-date credits and the month-end forecast per org (team null) and per org x team,
-- added up from fct_credit_month_to_date (project x team): the forecast is linear in the
-- credits, so a team's forecast is the sum of its projects' (and the org's of its teams').
with

month_to_date as (

    select * from {{ ref('fct_credit_month_to_date') }}

),

final as (

    select
        any_value(as_of_date) as as_of_date,
        any_value(month_start) as month_start,
        any_value(month_end) as month_end,
        any_value(days_elapsed) as days_elapsed,
        any_value(days_left) as days_left,
        org_id,
        org_slug,
        team,
        grouping(team) = 1 as is_org_total,
        count(distinct project_id) as projects,
        sum(mtd_credits) as mtd_credits,
        sum(mtd_usd) as mtd_usd,
        sum(trailing_7d_credits) as trailing_7d_credits,
        sum(forecast_credits) as forecast_credits,
        sum(forecast_usd) as forecast_usd,
        sum(previous_month_credits) as previous_month_credits,

    from month_to_date
    group by grouping sets ((org_id, org_slug), (org_id, org_slug, team))

)

select * from final
