-- Per job over Insights' reporting windows (latest snapshot, default branch): runs, success
-- rate, p50/p95 duration of successful runs (Insights' job metrics), with the queue time of
-- the same job runs from the usage export (started in the window, default branch).
with

metrics as (

    select * from {{ ref('stg_insights__workflow_job_metrics') }}
    where scope = 'default-branch'
    qualify snapshot_date = max(snapshot_date) over (partition by project_slug, reporting_window)

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

windows as (

    select min(window_start) as first_start from metrics

),

job_runs as (

    select job_runs.project_slug, job_runs.workflow_name, job_runs.job_name, job_runs.started_at, job_runs.queue_seconds
    from {{ ref('int_job_runs_keyed') }} as job_runs
    inner join projects
        on job_runs.project_id = projects.project_id
        and job_runs.branch = projects.default_branch
    where job_runs.job_run_date >= (select cast(first_start as date) from windows)

),

queue as (

    select
        metrics.project_slug,
        metrics.reporting_window,
        metrics.workflow_name,
        metrics.job_name,
        count(*) as export_job_runs,
        quantile_cont(job_runs.queue_seconds, 0.5) as queue_p50_seconds,
        quantile_cont(job_runs.queue_seconds, 0.95) as queue_p95_seconds,

    from metrics
    inner join job_runs
        on metrics.project_slug = job_runs.project_slug
        and metrics.workflow_name = job_runs.workflow_name
        and metrics.job_name = job_runs.job_name
        and job_runs.started_at >= metrics.window_start
        and job_runs.started_at < metrics.window_end
    group by all

),

final as (

    select
        metrics.snapshot_date,
        metrics.reporting_window,
        projects.org_id,
        metrics.project_slug,
        metrics.workflow_name,
        metrics.job_name,
        metrics.window_start,
        metrics.window_end,
        metrics.total_runs as runs,
        metrics.successful_runs,
        metrics.failed_runs,
        {{ success_rate('metrics.successful_runs', 'metrics.failed_runs') }} as success_rate,
        metrics.throughput_runs_per_day,
        metrics.duration_median_seconds as duration_p50_seconds,
        metrics.duration_p95_seconds,
        queue.export_job_runs,
        queue.queue_p50_seconds,
        queue.queue_p95_seconds,

    from metrics
    left join projects
        on metrics.project_slug = projects.project_slug
    left join queue
        on metrics.project_slug = queue.project_slug
        and metrics.reporting_window = queue.reporting_window
        and metrics.workflow_name = queue.workflow_name
        and metrics.job_name = queue.job_name

)

select *, {{ owner_columns('job_name') }} from final
