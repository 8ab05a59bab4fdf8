-- Projects from the projects table, completed with projects only seen in the usage
-- export (slug derived from the VCS URL when the projects table has not landed). The usage
-- export's values are the latest extraction's, from its per-day rollup.
with

projects as (

    select * from {{ ref('stg_circleci__projects') }}

),

usage_days as (

    select * from {{ ref('int_usage_projects_aggregated') }}

),

from_usage as (

    select
        project_id,
        arg_max(project_name, extracted_at) as project_name,
        arg_max(org_id, extracted_at) as org_id,
        arg_max(org_name, extracted_at) as org_name,
        arg_max(vcs_url, extracted_at) as vcs_url,

    from usage_days
    group by project_id

),

final as (

    select
        coalesce(projects.project_id, from_usage.project_id) as project_id,
        coalesce(
            projects.project_slug,
            case
                when from_usage.vcs_url like 'https://github.com/%'
                    then 'gh/' || substr(from_usage.vcs_url, length('https://github.com/') + 1)
                when from_usage.vcs_url like 'https://bitbucket.org/%'
                    then 'bb/' || substr(from_usage.vcs_url, length('https://bitbucket.org/') + 1)
                else from_usage.project_id
            end
        ) as project_slug,
        coalesce(projects.project_name, from_usage.project_name) as project_name,
        coalesce(projects.org_id, from_usage.org_id) as org_id,
        coalesce(projects.org_name, from_usage.org_name) as org_name,
        projects.org_slug,
        coalesce(projects.vcs_url, from_usage.vcs_url) as vcs_url,
        projects.default_branch,

    from projects
    full outer join from_usage
        on projects.project_id = from_usage.project_id

)

select * from final
