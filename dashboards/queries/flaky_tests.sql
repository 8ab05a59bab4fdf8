-- Flaky tests: every test that passed and failed on the same commit, over the lake's history.
-- One row per test identity (project x job x classname x test name), from fct_flaky_tests:
-- runs, times flaked, flip rate (raw and Laplace-smoothed), last flake, and what its flaky
-- job failures wasted (its equal share of their run seconds and credits; time_wasted_seconds
-- is CircleCI's measure, the test's own run time). Top-N bars and the detail table.
select
    project_slug,
    job_name,
    classname,
    test_name,
    file,
    runs,
    failures,
    commits_flaked,
    times_flaked,
    flip_rate,
    flip_rate_smoothed,
    first_flake_at,
    last_flake_at,
    currently_flaky,
    flaky_job_failures,
    job_seconds_wasted,
    time_wasted_seconds,
    credits_wasted,
    usd_wasted,
from fct_flaky_tests
order by credits_wasted desc nulls last, times_flaked desc
