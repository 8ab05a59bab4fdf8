-- Per job and day on the default branch, from Insights' daily job time series: runs, success
-- rate and the p50/p95 duration of successful runs (Insights computes the percentiles per
-- bucket: they are not added up across days).
with

buckets as (

    select * from {{ ref('stg_insights__job_timeseries') }}
    where granularity = 'daily'
        and branch is null

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

final as (

    select
        buckets.bucket_date as day,
        projects.org_id,
        buckets.project_slug,
        buckets.workflow_name,
        buckets.job_name,
        buckets.total_runs as runs,
        buckets.successful_runs,
        buckets.failed_runs,
        {{ success_rate('buckets.successful_runs', 'buckets.failed_runs') }} as success_rate,
        buckets.duration_median_seconds as duration_p50_seconds,
        buckets.duration_p95_seconds,
        buckets.duration_total_seconds,

    from buckets
    left join projects
        on buckets.project_slug = projects.project_slug

)

select *, {{ owner_columns('job_name') }} from final
