-- Flaky tests: every test that passed and failed on the same commit, over the lake's history.
-- One row per test identity (project x job x classname x test name), from fct_flaky_tests:
-- runs, times flaked, flip rate (raw and Laplace-smoothed), last flake, and what its flaky
-- job failures wasted (its equal share of their run seconds and credits; time_wasted_seconds
-- is CircleCI's measure, the test's own run time). test_label (last classname segment + test
-- name) and project_name (dim_projects) are display labels. Top-N bars and the detail table.
with flaky as (
    select * from fct_flaky_tests
),

projects as (
    select project_slug, any_value(project_name) as project_name,
    from dim_projects
    group by project_slug
),

final as (
    select
        flaky.project_slug,
        flaky.org_slug,
        flaky.team,
        coalesce(projects.project_name, flaky.project_slug) as project_name,
        flaky.job_name,
        flaky.classname,
        flaky.test_name,
        concat_ws('.', nullif(regexp_extract(flaky.classname, '[^.]+$'), ''), flaky.test_name) as test_label,
        flaky.file,
        flaky.runs,
        flaky.failures,
        flaky.commits_flaked,
        flaky.times_flaked,
        flaky.flip_rate,
        flaky.flip_rate_smoothed,
        flaky.first_flake_at,
        flaky.last_flake_at,
        flaky.currently_flaky,
        flaky.flaky_job_failures,
        flaky.job_seconds_wasted,
        flaky.time_wasted_seconds,
        flaky.credits_wasted,
        flaky.usd_wasted,
    from flaky
    left join projects using (project_slug)
)

select * from final order by credits_wasted desc nulls last, times_flaked desc
