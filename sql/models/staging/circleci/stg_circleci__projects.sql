-- One row per project (latest extraction wins).
with

source as (

    select * from {{ source('lake', 'projects') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (partition by project_id order by extracted_at desc) = 1

),

renamed as (

    select
        project_id,
        project_slug,
        project_name,
        org_id,
        org_name,
        org_slug,
        vcs_provider,
        vcs_url,
        default_branch,

    from deduplicated

)

select * from renamed
