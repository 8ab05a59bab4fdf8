-- What the usage export says about each project, per day: its name, organisation and VCS URL
-- from the day's latest extraction. int_projects_unioned takes the latest of these days, so
-- a build reads the rebuilt days' job runs, not the whole history, to name the projects.
-- Incremental (macros/incremental_window.sql): the days from rebuild_from are rebuilt.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='job_run_date') }}

with

job_runs as (

    select * from {{ ref('stg_usage__job_runs') }}
    {% if is_incremental() %}
    where job_run_date >= {{ rebuild_from('job_run_date') }}
        and {{ from_day_on('started_at', rebuild_from('job_run_date')) }}
    {% endif %}

),

final as (

    select
        job_run_date,
        project_id,
        arg_max(project_name, extracted_at) as project_name,
        arg_max(org_id, extracted_at) as org_id,
        arg_max(org_name, extracted_at) as org_name,
        arg_max(vcs_url, extracted_at) as vcs_url,
        max(extracted_at) as extracted_at,

    from job_runs
    group by job_run_date, project_id

)

select * from final
