-- CircleCI's flaky-tests list, one per snapshot day x project x test.
with

source as (

    select * from {{ source('lake', 'flaky_tests') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by snapshot_date, project_slug, job_name, classname, test_name
        order by extracted_at desc
    ) = 1

),

renamed as (

    select
        snapshot_date,
        project_slug,
        job_name,
        classname,
        test_name,
        file,
        times_flaked,
        time_wasted_seconds,
        workflow_name,
        job_number,
        extracted_at,

    from deduplicated

)

select * from renamed
