-- Insights test metrics (getProjectWorkflowTestMetrics: most failed and slowest tests of a
-- workflow's 10 most recent runs), one per snapshot day x project x workflow x scope x
-- category x test (latest extraction of the day wins).
with

source as (

    select * from {{ source('lake', 'test_metrics') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by snapshot_date, project_slug, workflow_name, scope, category, test_name, classname
        order by extracted_at desc
    ) = 1

),

renamed as (

    select
        snapshot_date,
        project_slug,
        workflow_name,
        scope,
        category,
        job_name,
        classname,
        test_name,
        file,
        source as test_source,
        failed_runs,
        total_runs,
        p95_duration_seconds,
        flaky as is_flaky,
        extracted_at,

    from deduplicated

)

select * from renamed
