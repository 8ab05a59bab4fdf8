-- Credit spend per period by credit type (compute, DLC, user, storage, network, lease, ...).
-- One row per reporting period x project x credit type with non-zero credits, from the
-- per-type columns of fct_credit_spend_project_daily (the rollup of fct_credit_spend_daily;
-- unpivoted; credit_type = column name without "_credits"). The types add up to
-- total_credits. Periods as in credits_by_project.sql (dim_reporting_periods; credits /
-- period_days is a per-day rate). Stacked bars by credit type. Unordered: the dashboard sorts.
with spend as (
    select
        coalesce(periods.period_start, spend.spend_date) as period_start,
        coalesce(periods.period_days, 1) as period_days,
        spend.project_slug,
        spend.org_slug,
        spend.team,
        sum(spend.compute_credits) as compute,
        sum(spend.dlc_credits) as dlc,
        sum(spend.user_credits) as "user",
        sum(spend.storage_credits) as storage,
        sum(spend.network_credits) as network,
        sum(spend.lease_credits) as lease,
        sum(spend.lease_overage_credits) as lease_overage,
        sum(spend.ipranges_credits) as ipranges,
    from fct_credit_spend_project_daily as spend
    left join dim_reporting_periods as periods
        on spend.spend_date = periods.day
    group by all
),

final as (
    unpivot spend
    on compute, dlc, "user", storage, network, lease, lease_overage, ipranges
    into name credit_type value credits
)

select period_start, period_days, project_slug, org_slug, team, credit_type, credits,
from final
where credits <> 0
