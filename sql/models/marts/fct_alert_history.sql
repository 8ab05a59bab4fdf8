-- Alerts sent or pending, with whether each was delivered.
with

history as (

    select * from {{ ref('stg_alerts__alert_history') }}

),

final as (

    select
        rule,
        incident_key,
        destination,
        subject,
        figure,
        threshold,
        unit,
        line,
        page,
        as_of_date,
        run_id,
        first_attempt_at,
        last_attempt_at,
        attempts,
        delivered_at,
        delivered_at is not null as is_delivered,
        error,

    from history

)

select * from final
