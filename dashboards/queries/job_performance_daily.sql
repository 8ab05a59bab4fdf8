-- Daily job performance on the default branch (Insights' daily job time series).
-- One row per day x project x workflow x job, from fct_job_performance_daily: runs, outcomes
-- (successful + failed, the success-rate denominator) and the p50/p95 duration of successful
-- runs (Insights' per-day percentiles, seconds: charts draw them per job, never added up).
-- Unordered: the dashboard sorts.
select
    day,
    org_id,
    org_slug,
    team,
    project_slug,
    workflow_name,
    job_name,
    runs,
    successful_runs,
    successful_runs + failed_runs as outcomes,
    duration_p50_seconds,
    duration_p95_seconds,
from fct_job_performance_daily
