-- Weekly MTTR per workflow.
-- One row per project x workflow x branch x ISO week with recoveries, from fct_mttr_weekly.
-- recovery_seconds = mttr_mean_seconds x recoveries, so MTTR over any set of rows is
-- sum(recovery_seconds) / sum(recoveries) (a recovery belongs to the week it recovered).
-- Unordered: the dashboard sorts.
select
    week_start,
    project_slug,
    org_slug,
    team,
    workflow_name,
    branch,
    recoveries,
    mttr_mean_seconds * recoveries as recovery_seconds,
    mttr_mean_seconds,
    mttr_median_seconds,
from fct_mttr_weekly
