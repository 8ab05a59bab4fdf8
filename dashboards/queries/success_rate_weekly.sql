-- Weekly workflow success rate.
-- One row per project x workflow x branch x ISO week with runs, from
-- fct_workflow_health_weekly: successes and outcomes (successes + failures; canceled and
-- other outcomes ignored). Success rate = sum(successes) / sum(outcomes).
-- Unordered: the dashboard sorts.
select
    week_start,
    project_slug,
    org_slug,
    team,
    workflow_name,
    branch,
    runs,
    successful_runs as successes,
    successful_runs + failed_runs as outcomes,
from fct_workflow_health_weekly
where runs > 0
