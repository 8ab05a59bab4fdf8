-- Job runs with their failing tests and the flaky-job-failure flag: a failed run
-- (status failed) whose failing tests all flaked on that commit. A view (see
-- warehouse.build.MATERIALIZATION_OVERRIDES): the wide rows are stored once, in int_job_runs_keyed.
with

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}

),

job_test_outcomes as (

    select * from {{ ref('int_job_test_outcomes_aggregated') }}

),

final as (

    select
        job_runs.*,
        coalesce(job_test_outcomes.failed_tests, 0) as failed_tests,
        coalesce(
            job_runs.job_status = 'failed'
            and job_test_outcomes.failed_tests > 0
            and job_test_outcomes.unflaked_failed_tests = 0,
            false
        ) as is_flaky_failure,
        job_runs.total_credits * {{ price_per_credit() }} as total_usd,

    from job_runs
    left join job_test_outcomes
        on job_runs.project_slug = job_test_outcomes.project_slug
        and job_runs.job_number = job_test_outcomes.job_number

)

select * from final
