-- Credit spend per day by credit type (compute, DLC, user, storage, network, lease, ...).
-- One row per UTC day x project x credit type with non-zero credits, from the per-type
-- columns of fct_credit_spend_project_daily (the rollup of fct_credit_spend_daily; unpivoted; credit_type = column name without
-- "_credits"). The types add up to total_credits. Stacked bars by credit type.
with spend as (
    select
        spend_date,
        project_slug,
        sum(compute_credits) as compute,
        sum(dlc_credits) as dlc,
        sum(user_credits) as "user",
        sum(storage_credits) as storage,
        sum(network_credits) as network,
        sum(lease_credits) as lease,
        sum(lease_overage_credits) as lease_overage,
        sum(ipranges_credits) as ipranges,
    from fct_credit_spend_project_daily
    group by spend_date, project_slug
),

final as (
    unpivot spend
    on compute, dlc, "user", storage, network, lease, lease_overage, ipranges
    into name credit_type value credits
)

select spend_date as credit_date, project_slug, credit_type, credits,
from final
where credits <> 0
order by credit_date, project_slug, credit_type
