-- One row per test result (project x job number x classname x name x file).
with

source as (

    select * from {{ source('lake', 'job_tests') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by project_slug, job_number, classname, name, file
        order by extracted_at desc
    ) = 1

),

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
