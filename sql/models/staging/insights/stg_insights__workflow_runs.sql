-- One row per workflow run from Insights (any scope; latest extraction wins).
with

source as (

    select * from {{ source('lake', 'workflow_runs') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (partition by workflow_id order by extracted_at desc) = 1

),

renamed as (

    select
        workflow_id,
        project_slug,
        workflow_name,
        branch,
        status,
        is_approval,
        created_at,
        stopped_at,
        duration_seconds,
        credits_used as insights_credits,

    from deduplicated

)

select * from renamed
