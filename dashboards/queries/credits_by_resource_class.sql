-- Credit spend per period by resource class.
-- One row per reporting period x project x executor x resource class: usage-export total
-- credits, from fct_credit_spend_project_daily (the rollup of fct_credit_spend_daily to this
-- grain). Periods as in credits_by_project.sql (dim_reporting_periods; credits / period_days
-- is a per-day rate). Stacked bars by resource class. Unordered: the dashboard sorts.
select
    coalesce(periods.period_start, spend.spend_date) as period_start,
    coalesce(periods.period_days, 1) as period_days,
    spend.project_slug,
    spend.org_slug,
    spend.team,
    spend.executor,
    spend.resource_class,
    sum(spend.total_credits) as credits,
from fct_credit_spend_project_daily as spend
left join dim_reporting_periods as periods
    on spend.spend_date = periods.day
group by all
