-- Top movers: credits of the latest complete ISO week vs the week before, per project x workflow.
-- One row per project x workflow with spend in either week, from fct_credit_movers_weekly
-- (mover_rank 1 = largest absolute change). abs_delta_credits orders the table.
with latest as (
    select max(week_start) as week_start
    from fct_credit_movers_weekly
    where is_complete_week
),

final as (
    select
        m.week_start,
        m.project_slug,
        m.org_slug,
        m.team,
        m.workflow_name,
        m.credits,
        m.previous_week_credits,
        m.delta_credits,
        m.delta_pct,
        m.delta_usd,
        abs(m.delta_credits) as abs_delta_credits,
        m.mover_rank,
    from fct_credit_movers_weekly as m
    inner join latest using (week_start)
)

select * from final order by mover_rank
