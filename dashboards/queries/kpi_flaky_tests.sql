-- KPI: currently flaky tests (flaked within the last 14 days), week over week.
-- One row per project. flaky_tests_now = tests with currently_flaky in fct_flaky_tests.
-- flaky_tests_week_ago = the same count as it stood 7 days earlier: tests with a flaked
-- failure (a failure on a commit where the test also passed) in the 14 days ending
-- as_of_date-7, from fct_test_runs (the marts keep only each test's last flake).
with meta as (
    select as_of_date from warehouse_meta
),

now_flaky as (
    select project_slug, count(*) filter (where currently_flaky) as flaky_tests_now,
    from fct_flaky_tests
    group by project_slug
),

results as (
    select project_slug, job_name, classname, test_name, commit_key, result, is_failure, job_started_at,
    from fct_test_runs
    where result <> 'skipped'
),

flaked_commits as (
    select project_slug, job_name, classname, test_name, commit_key,
    from results
    group by all
    having bool_or(is_failure) and bool_or(result = 'success')
),

week_ago as (
    select r.project_slug, count(distinct (r.job_name, r.classname, r.test_name)) as flaky_tests_week_ago,
    from results as r
    inner join flaked_commits using (project_slug, job_name, classname, test_name, commit_key)
    cross join meta as m
    where r.is_failure
      and r.job_started_at >= cast(m.as_of_date - 20 as timestamp) at time zone 'UTC'
      and r.job_started_at < cast(m.as_of_date - 6 as timestamp) at time zone 'UTC'
    group by r.project_slug
),

final as (
    select
        project_slug,
        coalesce(now_flaky.flaky_tests_now, 0) as flaky_tests_now,
        coalesce(week_ago.flaky_tests_week_ago, 0) as flaky_tests_week_ago,
    from now_flaky
    full outer join week_ago using (project_slug)
)

select * from final order by project_slug
