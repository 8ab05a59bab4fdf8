-- One row per workflow run from Insights (any scope; latest extraction wins).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated ids are ranked).
{{ latest_rows('deduplicated', source('lake', 'workflow_runs'), ['workflow_id'], 'extracted_at desc', 'created_at') }},

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
