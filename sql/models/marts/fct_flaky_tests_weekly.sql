with

tests as (

    select * from {{ ref('int_test_results_flagged') }}
    where result <> 'skipped'

),

flaky_tests as (

    select * from {{ ref('fct_flaky_tests') }}

),

final as (

    select
        cast(date_trunc('week', tests.job_started_at) as date) as week_start,
        tests.project_slug,
        tests.job_name,
        tests.classname,
        tests.test_name,
        count(*) as runs,
        count(*) filter (where tests.is_failure) as failures,
        count(*) filter (where tests.is_failure and tests.flaked_on_commit) as times_flaked,

    from tests
    semi join flaky_tests
        on tests.project_slug = flaky_tests.project_slug
        and tests.job_name is not distinct from flaky_tests.job_name
        and tests.classname is not distinct from flaky_tests.classname
        and tests.test_name is not distinct from flaky_tests.test_name
    group by all

)

select *, {{ owner_columns('job_name') }} from final
