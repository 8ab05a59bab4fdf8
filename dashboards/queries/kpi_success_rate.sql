-- KPI: workflow success rate over the last 7 days, week over week.
-- One row per project x branch with the additive parts: successes and outcomes
-- (successes + failures; canceled and other outcomes are ignored) of workflow runs created
-- in as_of_date-6..as_of_date ("last_7d") and the 7 days before ("prev_7d").
-- Success rate = sum(successes) / sum(outcomes) over the rows you keep. previous_covered:
-- workflow runs reach back to the 7 days before (else week over week is shown as n/a).
with meta as (
    select as_of_date, workflow_runs_first_date <= as_of_date - 13 as previous_covered from warehouse_meta
),

runs as (
    select
        r.project_slug,
        r.org_slug,
        r.team,
        r.branch,
        r.outcome,
        r.run_date > m.as_of_date - 7 as is_last_7d,
        m.previous_covered,
    from fct_workflow_runs as r
    cross join meta as m
    where r.run_date > m.as_of_date - 14 and r.run_date <= m.as_of_date
      and r.outcome in ('success', 'failure')
),

final as (
    select
        project_slug,
        org_slug,
        team,
        branch,
        count(*) filter (where is_last_7d and outcome = 'success') as successes_last_7d,
        count(*) filter (where is_last_7d) as outcomes_last_7d,
        count(*) filter (where not is_last_7d and outcome = 'success') as successes_prev_7d,
        count(*) filter (where not is_last_7d) as outcomes_prev_7d,
        any_value(previous_covered) as previous_covered,
    from runs
    group by project_slug, org_slug, team, branch
)

select * from final order by project_slug, branch
