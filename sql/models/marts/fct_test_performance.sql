-- The most failed and the slowest tests per project x workflow from Insights' test metrics
-- (the latest snapshot of each workflow, default branch). Insights computes them over the
-- workflow's most recent runs (10 at CircleCI); a test on both lists is one row.
with

metrics as (

    select * from {{ ref('stg_insights__test_metrics') }}
    where scope = 'default-branch'
    qualify snapshot_date = max(snapshot_date) over (partition by project_slug, workflow_name)

),

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

tests as (

    select
        snapshot_date,
        project_slug,
        workflow_name,
        job_name,
        classname,
        test_name,
        any_value(file) as file,
        max(failed_runs) as failed_runs,
        max(total_runs) as total_runs,
        max(p95_duration_seconds) as p95_duration_seconds,
        bool_or(is_flaky) as is_flaky,
        bool_or(category = 'most_failed') as is_most_failed,
        bool_or(category = 'slowest') as is_slowest,

    from metrics
    group by all

),

final as (

    select
        tests.snapshot_date,
        projects.org_id,
        tests.project_slug,
        tests.workflow_name,
        tests.job_name,
        tests.classname,
        tests.test_name,
        tests.file,
        tests.total_runs,
        tests.failed_runs,
        case when tests.total_runs > 0 then tests.failed_runs / tests.total_runs end as failure_rate,
        tests.p95_duration_seconds,
        tests.is_flaky,
        tests.is_most_failed,
        tests.is_slowest,

    from tests
    left join projects
        on tests.project_slug = projects.project_slug

)

select *, {{ owner_columns('job_name') }} from final
