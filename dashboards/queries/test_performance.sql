-- The slowest and the most failed tests (Insights' test metrics of each workflow's most recent
-- runs, default branch). One row per project x workflow x job x test on either list, from
-- fct_test_performance, at most 10 per project and list (a project's largest p95 run times
-- and failure counts). test_label (last classname segment + test name) and project_name
-- (dim_projects) are display labels; slow_p95_seconds / failed_count are the lists' values
-- (null off the list), so bar charts and tables rank one list each.
with tests as (
    select
        *,
        row_number() over (partition by project_slug order by is_slowest desc, p95_duration_seconds desc nulls last, test_name) as slow_rank,
        row_number() over (partition by project_slug order by is_most_failed desc, failed_runs desc, test_name) as failed_rank,
    from fct_test_performance
),

projects as (
    select project_slug, any_value(project_name) as project_name,
    from dim_projects
    group by project_slug
),

final as (
    select
        tests.org_id,
        tests.org_slug,
        tests.team,
        tests.project_slug,
        coalesce(projects.project_name, tests.project_slug) as project_name,
        tests.workflow_name,
        tests.job_name,
        tests.classname,
        tests.test_name,
        concat_ws('.', nullif(regexp_extract(tests.classname, '[^.]+$'), ''), tests.test_name) as test_label,
        tests.total_runs,
        tests.failed_runs,
        tests.failure_rate,
        tests.p95_duration_seconds,
        tests.is_flaky,
        case when tests.is_slowest and tests.slow_rank <= 10 then tests.p95_duration_seconds end as slow_p95_seconds,
        case when tests.is_most_failed and tests.failed_rank <= 10 then tests.failed_runs end as failed_count,
    from tests
    left join projects using (project_slug)
    where (tests.is_slowest and tests.slow_rank <= 10) or (tests.is_most_failed and tests.failed_rank <= 10)
)

select * from final
