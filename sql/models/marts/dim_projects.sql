with

projects as (

    select * from {{ ref('int_projects_unioned') }}

),

final as (

    select
        project_id,
        project_slug,
        project_name,
        org_id,
        org_name,
        org_slug,
        vcs_url,
        default_branch,

    from projects

)

select * from final
