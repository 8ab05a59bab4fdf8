-- Anomaly: credits > mean + 3 sample std devs of the (up to) 28 preceding days,
-- with at least 14 days of history; days without jobs count as 0.
with

daily as (

    select * from {{ ref('int_credits_daily_zero_filled') }}

),

trailing_stats as (

    select
        *,
        count(*) over preceding_days as history_days,
        avg(cast(credits as double)) over preceding_days as trailing_28d_mean_credits,
        stddev_samp(cast(credits as double)) over preceding_days as trailing_28d_stddev_credits,

    from daily
    window preceding_days as (
        partition by project_id
        order by spend_date
        rows between 28 preceding and 1 preceding
    )

),

thresholds as (

    select
        *,
        case
            when history_days >= 14
                then trailing_28d_mean_credits + 3 * trailing_28d_stddev_credits
        end as threshold_credits,

    from trailing_stats

),

final as (

    select
        spend_date,
        org_id,
        project_id,
        project_slug,
        credits,
        history_days,
        trailing_28d_mean_credits,
        trailing_28d_stddev_credits,
        threshold_credits,
        case
            when cast(credits as double) > threshold_credits
                then cast(credits as double) - threshold_credits
        end as excess_credits,
        coalesce(cast(credits as double) > threshold_credits, false) as is_anomaly,

    from thresholds

)

select *, {{ owner_columns() }} from final
