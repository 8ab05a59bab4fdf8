-- Weekly job queue time (p50 and p95).
-- One row per project x ISO week x statistic (p50, p95), per branch and for all branches
-- together (all_branches = true, branch null), from fct_job_queue_weekly (queue_seconds =
-- started_at - queued_at of every job run; linear-interpolated quantiles, seconds).
-- Unordered: the dashboard sorts.
with quantiles as (
    select
        week_start,
        project_slug,
        org_slug,
        team,
        branch,
        all_branches,
        job_runs,
        queue_p50_seconds as p50,
        queue_p95_seconds as p95,
    from fct_job_queue_weekly
),

final as (
    unpivot quantiles on p50, p95 into name stat value queue_seconds
)

select * from final
