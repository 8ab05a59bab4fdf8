-- Test results with their commit key and whether the test flaked on that commit
-- (at least one success and one failure/error there; skipped ignored).
-- commit_key = pipeline id: every run of one pipeline shares a VCS revision.
with

tests as (

    select * from {{ ref('stg_circleci__job_tests') }}

),

job_runs as (

    select project_slug, job_number, job_id, pipeline_id
    from {{ ref('int_job_runs_keyed') }}

),

joined as (

    select
        tests.*,
        job_runs.job_id,
        coalesce(tests.pipeline_id, job_runs.pipeline_id) as commit_key,
        tests.result in ('failure', 'error') as is_failure,

    from tests
    left join job_runs
        on tests.project_slug = job_runs.project_slug
        and tests.job_number = job_runs.job_number

),

commit_outcomes as (

    select
        project_slug,
        job_name,
        classname,
        test_name,
        commit_key,
        bool_or(result = 'success') and bool_or(is_failure) as flaked_on_commit,

    from joined
    where result <> 'skipped'
    group by all

),

final as (

    select
        joined.*,
        coalesce(commit_outcomes.flaked_on_commit, false) as flaked_on_commit,

    from joined
    left join commit_outcomes
        on joined.project_slug = commit_outcomes.project_slug
        and joined.job_name is not distinct from commit_outcomes.job_name
        and joined.classname is not distinct from commit_outcomes.classname
        and joined.test_name is not distinct from commit_outcomes.test_name
        and joined.commit_key is not distinct from commit_outcomes.commit_key

)

select * from final
