-- Test results with their commit key and whether the test flaked on that commit
-- (at least one success and one failure/error there; skipped ignored).
-- commit_key = pipeline id: every run of one pipeline shares a VCS revision.
-- Incremental (macros/incremental_window.sql): the days from rebuild_from are rebuilt, their
-- commits' outcomes over the results from context_from.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='job_started_date') }}

with

tests as (

    select * from {{ ref('stg_circleci__job_tests') }}
    {% if is_incremental() %}
    where job_started_date >= {{ context_from('job_started_date') }}
        and {{ from_day_on('job_started_at', context_from('job_started_date')) }}
    {% endif %}

),

job_runs as (

    select project_slug, job_number, job_id, pipeline_id
    from {{ ref('int_job_runs_keyed') }}
    {% if is_incremental() %}
    where job_run_date >= {{ context_from('job_started_date') }} - 1
    {% endif %}

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
    {% if is_incremental() %}
    where joined.job_started_date >= {{ rebuild_from('job_started_date') }}
    {% endif %}

)

select * from final
