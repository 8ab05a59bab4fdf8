-- One row: the lake's first day and the as-of date (last complete day) every
-- "month to date", "trailing N days" and "currently" figure is relative to.
-- as_of_date: the build variable when given, else the day before the end of the latest
-- usage-export window (an export window ending at 23:59:59 covers that whole day).
with

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}

),

bounds as (

    select
        min(least(cast(export_window_start as date), job_run_date)) as lake_first_date,
        cast(max(export_window_end) + interval 1 second as date) - 1 as export_as_of_date,
        max(job_run_date) as last_job_date,

    from job_runs

),

final as (

    select
        coalesce(
            {{ as_of_date() }},
            export_as_of_date,
            last_job_date,
            current_date - 1
        ) as as_of_date,
        least(coalesce(lake_first_date, as_of_date), as_of_date) as first_date,

    from bounds

)

select * from final
