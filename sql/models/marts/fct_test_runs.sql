with

tests as (

    select * from {{ ref('int_test_results_flagged') }}

),

final as (

    select
        project_slug,
        job_name,
        job_number,
        job_id,
        pipeline_id,
        commit_key,
        workflow_id,
        job_started_at,
        classname,
        test_name,
        file,
        result,
        is_failure,
        run_time_seconds,
        message,

    from tests

)

select *, {{ owner_columns('job_name') }} from final
