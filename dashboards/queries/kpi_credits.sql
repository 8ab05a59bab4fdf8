-- KPI: credits month to date and month-end forecast, with the 7-day spend week over week.
-- One row per project (additive: sum the rows, never average them). Month to date and
-- forecast from fct_credit_month_to_date (forecast = MTD + mean daily credits of the
-- trailing 7 complete days x days left). Week over week: usage-export credits of
-- as_of_date-6..as_of_date vs as_of_date-13..as_of_date-7 (fct_credit_spend_project_daily,
-- the rollup of fct_credit_spend_daily). previous_covered: the usage export reaches back to
-- the 7 days before (else the week-over-week change is shown as n/a).
with meta as (
    select as_of_date, usage_first_date <= as_of_date - 13 as previous_covered from warehouse_meta
),

mtd as (
    select
        project_slug,
        org_slug,
        team,
        sum(mtd_credits) as credits_mtd,
        sum(mtd_usd) as usd_mtd,
        sum(forecast_credits) as credits_forecast,
        sum(forecast_usd) as usd_forecast,
    from fct_credit_month_to_date
    group by project_slug, org_slug, team
),

weekly as (
    select
        s.project_slug,
        s.org_slug,
        s.team,
        sum(s.total_credits) filter (where s.spend_date > m.as_of_date - 7) as credits_last_7d,
        sum(s.total_credits) filter (where s.spend_date <= m.as_of_date - 7) as credits_prev_7d,
    from fct_credit_spend_project_daily as s
    cross join meta as m
    where s.spend_date > m.as_of_date - 14 and s.spend_date <= m.as_of_date
    group by s.project_slug, s.org_slug, s.team
),

final as (
    select
        project_slug,
        org_slug,
        team,
        coalesce(mtd.credits_mtd, 0) as credits_mtd,
        coalesce(mtd.usd_mtd, 0) as usd_mtd,
        coalesce(mtd.credits_forecast, 0) as credits_forecast,
        coalesce(mtd.usd_forecast, 0) as usd_forecast,
        coalesce(weekly.credits_last_7d, 0) as credits_last_7d,
        coalesce(weekly.credits_prev_7d, 0) as credits_prev_7d,
        meta.previous_covered,
    from mtd
    full outer join weekly using (project_slug, org_slug, team)
    cross join meta
)

select * from final order by project_slug
