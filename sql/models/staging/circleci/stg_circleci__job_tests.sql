-- One row per test result (project x job number x classname x name x file).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated keys are ranked).
{{ latest_rows(
    'deduplicated', source('lake', 'job_tests'), ['project_slug', 'job_number', 'classname', 'name', 'file'],
    'extracted_at desc', 'job_started_at'
) }},

renamed as (

    select
        project_slug,
        job_number,
        job_name,
        pipeline_id,
        workflow_id,
        job_started_at,
        coalesce(cast(job_started_at as date), cast(extracted_at as date)) as job_started_date,
        classname,
        name as test_name,
        file,
        source as test_source,
        result,
        run_time_seconds,
        message,
        extracted_at,

    from deduplicated

)

select * from renamed
