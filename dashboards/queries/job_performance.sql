-- Job performance over the longest Insights reporting window landed (per project; default
-- branch). One row per project x workflow x job, from fct_job_performance: runs, success
-- rate, p50/p95 duration of successful runs (Insights) and p50/p95 queue time of the same
-- job runs (usage export). project_name (dim_projects) is a display label.
with jobs as (
    select * from fct_job_performance
    qualify window_end - window_start = max(window_end - window_start) over (partition by project_slug)
),

projects as (
    select project_slug, any_value(project_name) as project_name,
    from dim_projects
    group by project_slug
),

final as (
    select
        jobs.org_id,
        jobs.org_slug,
        jobs.team,
        jobs.project_slug,
        coalesce(projects.project_name, jobs.project_slug) as project_name,
        jobs.reporting_window,
        jobs.workflow_name,
        jobs.job_name,
        jobs.runs,
        jobs.success_rate,
        jobs.duration_p50_seconds,
        jobs.duration_p95_seconds,
        jobs.queue_p50_seconds,
        jobs.queue_p95_seconds,
    from jobs
    left join projects using (project_slug)
)

select * from final order by runs desc
