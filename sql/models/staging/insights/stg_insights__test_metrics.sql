-- Insights test metrics (getProjectWorkflowTestMetrics: most failed and slowest tests of a
-- workflow's 10 most recent runs), one per snapshot day x project x workflow x scope x
-- category x test (latest extraction of the day wins).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated keys are ranked).
{{ latest_rows('deduplicated', source('lake', 'test_metrics'), ['snapshot_date', 'project_slug', 'workflow_name', 'scope', 'category', 'test_name', 'classname'], 'extracted_at desc', 'snapshot_date') }},

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
