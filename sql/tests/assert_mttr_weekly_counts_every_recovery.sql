-- Every closed failure streak is counted in exactly one MTTR week.
select
    (select count(*) from {{ ref('fct_recoveries') }} where not is_open) as closed_streaks,
    (select coalesce(sum(recoveries), 0) from {{ ref('fct_mttr_weekly') }}) as weekly_recoveries,
where closed_streaks <> weekly_recoveries
