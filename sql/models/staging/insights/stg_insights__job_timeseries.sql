-- Insights job time series (getJobTimeseries): one bucket per project x workflow x branch x
-- granularity x job x bucket start (latest extraction wins; branch null = the default branch).
with

source as (

    select * from {{ source('lake', 'job_timeseries') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by project_slug, workflow_name, branch, granularity, job_name, bucket_start
        order by extracted_at desc
    ) = 1

),

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
