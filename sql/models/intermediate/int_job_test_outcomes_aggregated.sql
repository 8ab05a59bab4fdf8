-- One row per job run with test results (project x job number): its failing tests and how
-- many of them did not flake on that commit. Small (tested jobs only), so the job-run view
-- int_job_runs_enriched joins it cheaply on every read.
with

tests as (

    select * from {{ ref('int_test_results_flagged') }}

),

final as (

    select
        project_slug,
        job_number,
        count(*) filter (where is_failure) as failed_tests,
        count(*) filter (where is_failure and not flaked_on_commit) as unflaked_failed_tests,

    from tests
    group by project_slug, job_number

)

select * from final
