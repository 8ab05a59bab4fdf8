-- Failure streaks per project x workflow x branch (runs ordered by created_at, then id;
-- outcomes other than success/failure ignored). A streak's failures share the count of
-- successes before them; the recovering success is the next one.
with

runs as (

    select * from {{ ref('fct_workflow_runs') }}
    where outcome in ('success', 'failure')

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

numbered as (

    select
        *,
        sum(case when outcome = 'success' then 1 else 0 end) over (
            partition by project_slug, workflow_name, branch
            order by created_at, workflow_id
            rows between unbounded preceding and current row
        ) as successes_so_far,

    from runs

),

streaks as (

    select
        project_slug,
        workflow_name,
        branch,
        successes_so_far as streak_number,
        first(workflow_id order by created_at, workflow_id) as first_failed_run_id,
        first(created_at order by created_at, workflow_id) as first_failed_created_at,
        first(stopped_at order by created_at, workflow_id) as first_failed_stopped_at,
        count(*) as failed_runs,

    from numbered
    where outcome = 'failure'
    group by project_slug, workflow_name, branch, successes_so_far

),

recoverers as (

    select
        project_slug,
        workflow_name,
        branch,
        successes_so_far - 1 as streak_number,
        workflow_id as recovered_run_id,
        stopped_at as recovered_at,

    from numbered
    where outcome = 'success'

),

final as (

    select
        streaks.project_slug,
        streaks.workflow_name,
        streaks.branch,
        streaks.first_failed_run_id,
        streaks.first_failed_created_at,
        streaks.first_failed_stopped_at,
        streaks.failed_runs,
        recoverers.recovered_run_id,
        recoverers.recovered_at,
        (epoch_ms(recoverers.recovered_at) - epoch_ms(streaks.first_failed_stopped_at)) // 1000 as recovery_seconds,
        cast(date_trunc('week', recoverers.recovered_at) as date) as recovery_week_start,
        recoverers.recovered_run_id is null as is_open,
        case
            when recoverers.recovered_run_id is null
                then (epoch_ms(cast(dates.as_of_date + 1 as timestamptz)) - epoch_ms(streaks.first_failed_stopped_at)) // 1000
        end as open_age_seconds,

    from streaks
    cross join dates
    left join recoverers
        on streaks.project_slug = recoverers.project_slug
        and streaks.workflow_name = recoverers.workflow_name
        and streaks.branch is not distinct from recoverers.branch
        and streaks.streak_number = recoverers.streak_number

)

select * from final
