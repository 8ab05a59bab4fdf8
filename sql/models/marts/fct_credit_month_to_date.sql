-- Per project x team (fct_credit_forecast adds them up per org and per team).
-- Forecast = MTD + (trailing 7 complete days' credits / 7) x days left in the month.
with

spend as (

    select * from {{ ref('fct_credit_spend_project_daily') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

bounds as (

    select
        as_of_date,
        cast(date_trunc('month', as_of_date) as date) as month_start,
        cast(last_day(as_of_date) as date) as month_end,
        cast(date_trunc('month', as_of_date) - interval 1 month as date) as previous_month_start,

    from dates

),

per_project as (

    select
        spend.org_id,
        spend.project_id,
        any_value(spend.project_slug) as project_slug,
        any_value(spend.org_slug) as org_slug,
        spend.team,
        sum(spend.total_credits) filter (
            where spend.spend_date between bounds.month_start and bounds.as_of_date
        ) as mtd_credits,
        sum(spend.total_credits) filter (
            where spend.spend_date between bounds.as_of_date - 6 and bounds.as_of_date
        ) as trailing_7d_credits,
        sum(spend.total_credits) filter (
            where spend.spend_date >= bounds.previous_month_start
            and spend.spend_date < bounds.month_start
        ) as previous_month_credits,

    from spend
    cross join bounds
    group by spend.org_id, spend.project_id, spend.team

),

final as (

    select
        bounds.as_of_date,
        bounds.month_start,
        bounds.month_end,
        cast(bounds.as_of_date - bounds.month_start + 1 as integer) as days_elapsed,
        cast(bounds.month_end - bounds.as_of_date as integer) as days_left,
        per_project.org_id,
        per_project.project_id,
        per_project.project_slug,
        per_project.org_slug,
        per_project.team,
        coalesce(per_project.mtd_credits, 0) as mtd_credits,
        coalesce(per_project.mtd_credits, 0) * {{ price_per_credit() }} as mtd_usd,
        coalesce(per_project.trailing_7d_credits, 0) as trailing_7d_credits,
        cast(coalesce(per_project.trailing_7d_credits, 0) / 7 as decimal(38, 6)) as trailing_7d_mean_daily_credits,
        cast(
            coalesce(per_project.mtd_credits, 0)
            + coalesce(per_project.trailing_7d_credits, 0) * (bounds.month_end - bounds.as_of_date) / 7
            as decimal(38, 6)
        ) as forecast_credits,
        cast(
            coalesce(per_project.mtd_credits, 0)
            + coalesce(per_project.trailing_7d_credits, 0) * (bounds.month_end - bounds.as_of_date) / 7
            as decimal(38, 6)
        ) * {{ price_per_credit() }} as forecast_usd,
        coalesce(per_project.previous_month_credits, 0) as previous_month_credits,

    from per_project
    cross join bounds
    where per_project.mtd_credits is not null
        or per_project.trailing_7d_credits is not null

)

select * from final
