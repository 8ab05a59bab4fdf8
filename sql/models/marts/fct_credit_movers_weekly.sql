-- From the daily spend mart (its sums are the job runs' credits).
with

spend as (

    select * from {{ ref('fct_credit_spend_daily') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

weekly as (

    select
        cast(date_trunc('week', spend_date) as date) as week_start,
        org_id,
        project_id,
        workflow_name,
        sum(total_credits) as credits,

    from spend
    group by all

),

series as (

    select
        org_id,
        project_id,
        workflow_name,

    from weekly
    group by all

),

weeks as (

    select cast(unnest(generate_series(
        (select min(week_start) from weekly),
        cast(date_trunc('week', as_of_date) as date),
        interval 7 day
    )) as date) as week_start
    from dates

),

slugs as (

    select project_id, any_value(project_slug) as project_slug
    from spend
    group by project_id

),

paired as (

    select
        weeks.week_start,
        series.org_id,
        series.project_id,
        series.workflow_name,
        coalesce(current_week.credits, 0) as credits,
        coalesce(previous_week.credits, 0) as previous_week_credits,

    from series
    cross join weeks
    left join weekly as current_week
        on current_week.project_id = series.project_id
        and current_week.workflow_name = series.workflow_name
        and current_week.week_start = weeks.week_start
    left join weekly as previous_week
        on previous_week.project_id = series.project_id
        and previous_week.workflow_name = series.workflow_name
        and previous_week.week_start = weeks.week_start - 7

),

final as (

    select
        paired.week_start,
        paired.week_start + 6 <= dates.as_of_date as is_complete_week,
        paired.org_id,
        paired.project_id,
        slugs.project_slug,
        paired.workflow_name,
        paired.credits,
        paired.previous_week_credits,
        paired.credits - paired.previous_week_credits as delta_credits,
        case
            when paired.previous_week_credits <> 0
                then cast(paired.credits - paired.previous_week_credits as double)
                    / cast(paired.previous_week_credits as double)
        end as delta_pct,
        (paired.credits - paired.previous_week_credits) * {{ price_per_credit() }} as delta_usd,
        row_number() over (
            partition by paired.week_start
            order by abs(paired.credits - paired.previous_week_credits) desc, slugs.project_slug, paired.workflow_name
        ) as mover_rank,

    from paired
    cross join dates
    left join slugs
        on paired.project_id = slugs.project_id
    where paired.credits <> 0
        or paired.previous_week_credits <> 0

)

select *, {{ owner_columns() }} from final
