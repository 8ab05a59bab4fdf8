-- Insights job metrics (getProjectWorkflowJobMetrics), one per snapshot day x project x
-- workflow x job x scope x reporting window (latest extraction of the day wins).
with

source as (

    select * from {{ source('lake', 'workflow_job_metrics') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by snapshot_date, project_slug, scope, reporting_window, workflow_name, job_name
        order by extracted_at desc
    ) = 1

),

renamed as (

    select
        snapshot_date,
        project_slug,
        scope,
        reporting_window,
        workflow_name,
        job_name,
        window_start,
        window_end,
        total_runs,
        successful_runs,
        failed_runs,
        success_rate,
        throughput_runs_per_day,
        duration_median_seconds,
        duration_p95_seconds,
        duration_mean_seconds,
        duration_max_seconds,
        total_credits_used as insights_credits,
        extracted_at,

    from deduplicated

)

select * from renamed
