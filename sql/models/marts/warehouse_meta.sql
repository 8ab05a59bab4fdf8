-- The build's parameters and as-of date (one row): dashboards show it in their headers.
with

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

final as (

    select
        {{ price_per_credit() }} as price_per_credit,
        {{ headroom() }} as headroom,
        dates.as_of_date,
        cast(current_timestamp as timestamptz) as built_at,
        {{ build_started_at() }} as build_started_at,

    from dates

)

select * from final
