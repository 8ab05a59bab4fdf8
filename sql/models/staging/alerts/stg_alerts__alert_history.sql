-- One row per alert rule x incident x destination (the lake table is keyed so already).
with

source as (

    select * from {{ source('lake', 'alert_history') }}

),

renamed as (

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
        attempts,
        delivered_at,
        error,
        extracted_at as last_attempt_at,

    from source

)

select * from renamed
