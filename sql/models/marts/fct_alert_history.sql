-- Alerts sent or pending, with whether each was delivered.
with

history as (

    select * from {{ ref('stg_alerts__alert_history') }}

),

final as (

    select
        *,
        delivered_at is not null as is_delivered,

    from history

)

select * from final
