-- Weekly p50 / p95 workflow duration (successful runs).
-- One row per project x workflow x ISO week, per branch and for all branches together
-- (all_branches = true, branch null), from fct_workflow_duration_weekly (percentiles of
-- fct_workflow_runs' successful runs, linear-interpolated, seconds, computed at build time).
-- Unordered: the dashboard sorts.
select
    week_start,
    project_slug,
    org_slug,
    team,
    workflow_name,
    branch,
    all_branches,
    successful_runs,
    p50_duration_seconds,
    p95_duration_seconds,
from fct_workflow_duration_weekly
