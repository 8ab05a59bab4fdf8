-- Insights job time series (getJobTimeseries): one bucket per project x workflow x branch x
-- granularity x job x bucket start (latest extraction wins; branch null = the default branch).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated keys are ranked).
{{ latest_rows('deduplicated', source('lake', 'job_timeseries'), ['project_slug', 'workflow_name', 'branch', 'granularity', 'job_name', 'bucket_start'], 'extracted_at desc', 'bucket_start') }},

renamed as (

    select
        project_slug,
        workflow_name,
        branch,
        granularity,
        job_name,
        bucket_start,
        cast(bucket_start as date) as bucket_date,
        min_started_at,
        max_ended_at,
        total_runs,
        successful_runs,
        failed_runs,
        median_credits_used,
        total_credits_used as insights_credits,
        duration_median_seconds,
        duration_p95_seconds,
        duration_max_seconds,
        duration_total_seconds,
        extracted_at,

    from deduplicated

)

select * from renamed
