-- The periods long histories are shown in: every day of the last 90 (from the Monday on or
-- before as_of_date - 89, so no week is split) is its own period; older days belong to
-- their ISO week. Dashboards group daily marts by period_start and divide sums by
-- period_days for a per-day rate, so thirteen months read as ~150 points, not ~400.
with

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

bounds as (

    select
        first_date,
        as_of_date,
        cast(date_trunc('week', as_of_date - 89) as date) as daily_from,

    from dates

),

days as (

    select
        cast(unnest(generate_series(least(first_date, daily_from), as_of_date, interval 1 day)) as date) as day,
        daily_from,

    from bounds

),

final as (

    select
        day,
        case when day >= daily_from then day else cast(date_trunc('week', day) as date) end as period_start,
        case when day >= daily_from then 'day' else 'week' end as period_grain,
        case when day >= daily_from then 1 else 7 end as period_days,

    from days

)

select * from final
