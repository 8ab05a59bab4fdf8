-- Our currently flaky tests vs CircleCI's list (its latest snapshot per project).
with

ours as (

    select * from {{ ref('fct_flaky_tests') }}
    where currently_flaky

),

circleci as (

    select * from {{ ref('stg_insights__flaky_tests') }}
    qualify snapshot_date = max(snapshot_date) over (partition by project_slug)

),

final as (

    select
        coalesce(ours.project_slug, circleci.project_slug) as project_slug,
        coalesce(ours.job_name, circleci.job_name) as job_name,
        coalesce(ours.classname, circleci.classname) as classname,
        coalesce(ours.test_name, circleci.test_name) as test_name,
        circleci.snapshot_date as circleci_snapshot_date,
        ours.project_slug is not null as in_warehouse,
        circleci.project_slug is not null as in_circleci,
        case
            when ours.project_slug is not null and circleci.project_slug is not null then 'both'
            when ours.project_slug is not null then 'warehouse_only'
            else 'circleci_only'
        end as agreement,
        ours.times_flaked as warehouse_times_flaked,
        circleci.times_flaked as circleci_times_flaked,
        ours.times_flaked - circleci.times_flaked as times_flaked_diff,

    from ours
    full outer join circleci
        on ours.project_slug = circleci.project_slug
        and ours.job_name is not distinct from circleci.job_name
        and ours.classname is not distinct from circleci.classname
        and ours.test_name is not distinct from circleci.test_name

)

select *, {{ owner_columns('job_name') }} from final
