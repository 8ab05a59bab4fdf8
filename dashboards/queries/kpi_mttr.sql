-- KPI: MTTR over the last 7 days, week over week.
-- One row per project x branch with the additive parts of the mean time to recover:
-- total recovery seconds and number of recoveries whose recovering success stopped in
-- as_of_date-6..as_of_date ("last_7d") or the 7 days before ("prev_7d"), from
-- fct_recoveries (open streaks excluded). MTTR = sum(seconds) / sum(recoveries).
-- previous_covered: workflow runs reach back to the 7 days before (else week over week is
-- shown as n/a).
with meta as (
    select as_of_date, workflow_runs_first_date <= as_of_date - 13 as previous_covered from warehouse_meta
),

recoveries as (
    select
        r.project_slug,
        r.org_slug,
        r.team,
        r.branch,
        r.recovery_seconds,
        cast(r.recovered_at at time zone 'UTC' as date) > m.as_of_date - 7 as is_last_7d,
        m.previous_covered,
    from fct_recoveries as r
    cross join meta as m
    where not r.is_open
      and cast(r.recovered_at at time zone 'UTC' as date) > m.as_of_date - 14
      and cast(r.recovered_at at time zone 'UTC' as date) <= m.as_of_date
),

final as (
    select
        project_slug,
        org_slug,
        team,
        branch,
        coalesce(sum(recovery_seconds) filter (where is_last_7d), 0) as recovery_seconds_last_7d,
        count(*) filter (where is_last_7d) as recoveries_last_7d,
        coalesce(sum(recovery_seconds) filter (where not is_last_7d), 0) as recovery_seconds_prev_7d,
        count(*) filter (where not is_last_7d) as recoveries_prev_7d,
        any_value(previous_covered) as previous_covered,
    from recoveries
    group by project_slug, org_slug, team, branch
)

select * from final order by project_slug, branch
