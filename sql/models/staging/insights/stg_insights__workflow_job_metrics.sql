-- Insights job metrics (getProjectWorkflowJobMetrics), one per snapshot day x project x
-- workflow x job x scope x reporting window (latest extraction of the day wins).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated keys are ranked).
{{ latest_rows('deduplicated', source('lake', 'workflow_job_metrics'), ['snapshot_date', 'project_slug', 'scope', 'reporting_window', 'workflow_name', 'job_name'], 'extracted_at desc', 'snapshot_date') }},

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
