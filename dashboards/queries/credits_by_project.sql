-- Credit spend per period by project (and branch, for the branch filter).
-- One row per reporting period x project x branch: usage-export total credits and dollars,
-- from fct_credit_spend_branch_daily. Periods (dim_reporting_periods) are the last 90 days
-- one by one, then ISO weeks; period_days is the period's length, so credits / period_days
-- is a per-day rate. Drawn as one line per project on the Credit spend page (anomalies from
-- credit_anomalies.sql marked) and as totals on Overview. Unordered: the dashboard sorts.
select
    coalesce(periods.period_start, spend.spend_date) as period_start,
    coalesce(periods.period_days, 1) as period_days,
    spend.project_slug,
    spend.org_slug,
    spend.team,
    spend.branch,
    sum(spend.total_credits) as credits,
    sum(spend.total_usd) as usd,
from fct_credit_spend_branch_daily as spend
left join dim_reporting_periods as periods
    on spend.spend_date = periods.day
group by all
