-- Failure streaks per project x workflow x branch over the whole history of fct_workflow_runs
-- (Insights and usage-export runs; runs ordered by created_at, then, for runs only in the
-- export, the first job's queue time, then id; outcomes other than success/failure ignored). A streak's failures share the count of
-- successes before them; the recovering success is the next one.
-- Incremental (macros/incremental_window.sql): runs created before rebuild_from do not change,
-- so neither does a streak recovered before it. Rebuilt: every open streak (its age grows) and
-- every streak recovered from rebuild_from on (macros/replace_streaks.sql: streak_rebuilt),
-- from their scope's runs since the earliest such streak's first failure or new run; the
-- stored rows of those streaks are replaced by what the rebuild finds, which may be fewer
-- streaks (a failure known from the export only turned out canceled). Those runs follow a
-- success (or are the scope's first), so counting successes from there numbers the same
-- streaks as counting from the first run.
{{ config(materialized='incremental', incremental_strategy='replace_streaks', unique_key='first_failed_run_id') }}

with

{% if is_incremental() %}
-- Each CTE reads fct_workflow_runs itself (a CTE read twice is buffered whole).
recent_runs as (

    select project_slug, workflow_name, branch, workflow_id, created_at
    from {{ ref('fct_workflow_runs') }}
    where outcome in ('success', 'failure')
        and run_date >= {{ rebuild_from('run_date', ref('fct_workflow_runs')) }}

),

reopened as (

    select project_slug, workflow_name, branch, first_failed_created_at as created_at
    from {{ this }}
    where {{ streak_rebuilt() }}

),

scope_starts as (

    select project_slug, workflow_name, branch, min(created_at) as start_created_at
    from (
        select * from reopened
        union all
        select project_slug, workflow_name, branch, created_at from recent_runs
    )
    group by all

),

runs as (

    select runs.*, {{ export_run_tiebreak('runs') }} as tiebreak_at
    from {{ ref('fct_workflow_runs') }} as runs
    inner join scope_starts
        on runs.project_slug = scope_starts.project_slug
        and runs.workflow_name = scope_starts.workflow_name
        and runs.branch is not distinct from scope_starts.branch
    where runs.outcome in ('success', 'failure')
        and runs.created_at >= scope_starts.start_created_at

),
{% else %}
runs as (

    select *, {{ export_run_tiebreak() }} as tiebreak_at
    from {{ ref('fct_workflow_runs') }}
    where outcome in ('success', 'failure')

),
{% endif %}

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

numbered as (

    select
        *,
        sum(case when outcome = 'success' then 1 else 0 end) over (
            partition by project_slug, workflow_name, branch
            order by created_at, tiebreak_at, workflow_id
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
        first(workflow_id order by created_at, tiebreak_at, workflow_id) as first_failed_run_id,
        first(created_at order by created_at, tiebreak_at, workflow_id) as first_failed_created_at,
        first(stopped_at order by created_at, tiebreak_at, workflow_id) as first_failed_stopped_at,
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

select *, {{ owner_columns() }} from final
