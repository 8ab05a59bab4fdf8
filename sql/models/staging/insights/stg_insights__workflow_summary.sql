-- Insights workflow summaries, one per snapshot day x project x workflow x scope.
with

source as (

    select * from {{ source('lake', 'workflow_summary') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by snapshot_date, project_slug, workflow_name, scope
        order by extracted_at desc
    ) = 1

),

renamed as (

    select
        snapshot_date,
        project_slug,
        workflow_name,
        scope,
        window_start,
        window_end,
        total_runs,
        successful_runs,
        failed_runs,
        mttr_seconds,
        total_credits_used as insights_credits,
        success_rate,
        throughput_runs_per_day,
        extracted_at,

    from deduplicated

)

select * from renamed
