-- Who owns what: every project x job seen in the usage export or in test results, and each
-- project as a whole (job_name null: workflows, recoveries, queue time), with its team
-- (macros/teams.sql: the marts apply the same rules to their own rows).
with

projects as (

    select * from {{ ref('dim_projects') }}

),

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}

),

test_results as (

    select * from {{ ref('int_test_results_flagged') }}

),

jobs as (

    select distinct project_slug, job_name from job_runs
    union
    select distinct project_slug, job_name from test_results
    union
    select distinct project_slug, cast(null as varchar) as job_name from projects

),

final as (

    select
        {{ org_slug_of('jobs.project_slug') }} as org_slug,
        any_value(projects.org_id) as org_id,
        jobs.project_slug,
        jobs.job_name,
        jobs.job_name is null as is_project,
        case
            when jobs.job_name is null then {{ team_of('jobs.project_slug') }}
            else {{ team_of('jobs.project_slug', 'jobs.job_name') }}
        end as team,

    from jobs
    left join projects
        on jobs.project_slug = projects.project_slug
    where jobs.project_slug is not null
    group by jobs.project_slug, jobs.job_name

)

select * from final
