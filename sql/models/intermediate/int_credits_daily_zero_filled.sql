-- Total credits per project x day for every day from the lake's first day to
-- as_of_date (days without jobs are 0). From the daily spend rollup (its sums are the job
-- runs' credits), so it reads thousands of rows, not every job run.
with

spend as (

    select * from {{ ref('fct_credit_spend_project_daily') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

projects as (

    select
        project_id,
        arg_max(org_id, spend_date) as org_id,
        any_value(project_slug) as project_slug,

    from spend
    group by project_id

),

spine as (

    select cast(unnest(generate_series(first_date, as_of_date, interval 1 day)) as date) as spend_date
    from dates

),

daily as (

    select
        project_id,
        spend_date,
        sum(total_credits) as credits,

    from spend
    group by all

),

final as (

    select
        spine.spend_date,
        projects.org_id,
        projects.project_id,
        projects.project_slug,
        coalesce(daily.credits, 0) as credits,

    from projects
    cross join spine
    left join daily
        on projects.project_id = daily.project_id
        and spine.spend_date = daily.spend_date

)

select * from final
