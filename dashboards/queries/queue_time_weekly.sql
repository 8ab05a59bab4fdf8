-- Weekly job queue time (p50 and p95).
-- One row per project x ISO week x statistic (p50, p95), per branch and for all branches
-- together (all_branches = true, branch null), from fct_job_runs.queue_seconds
-- (started_at - queued_at) of every job run; linear-interpolated quantiles, seconds.
with jobs as (
    select
        project_slug,
        branch,
        cast(date_trunc('week', job_run_date) as date) as week_start,
        queue_seconds,
    from fct_job_runs
    where queue_seconds is not null
),

quantiles as (
    select
        week_start,
        project_slug,
        branch,
        grouping(branch) = 1 as all_branches,
        quantile_cont(queue_seconds, 0.5) as p50,
        quantile_cont(queue_seconds, 0.95) as p95,
    from jobs
    group by grouping sets ((week_start, project_slug, branch), (week_start, project_slug))
),

final as (
    unpivot quantiles on p50, p95 into name stat value queue_seconds
)

select * from final order by week_start, project_slug, all_branches desc, branch, stat
