-- Weekly p50/p95 duration of successful workflow runs per project x workflow, per branch and
-- for all branches together (all_branches = true, branch null): percentiles do not add up,
-- so both are computed here (linear-interpolated quantile_cont, seconds), at build time.
-- Incremental: the weeks from the week of rebuild_from (macros/incremental_window.sql) are
-- rebuilt; a week's runs are those created in it, so older weeks cannot change.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='week_start') }}

with

runs as (

    select
        project_slug,
        workflow_name,
        branch,
        cast(date_trunc('week', run_date) as date) as week_start,
        duration_seconds,

    from {{ ref('fct_workflow_runs') }}
    where outcome = 'success'
        and duration_seconds is not null
    {% if is_incremental() %}
        and run_date >= cast(date_trunc('week', {{ rebuild_from('week_start') }}) as date)
    {% endif %}

),

final as (

    select
        week_start,
        project_slug,
        workflow_name,
        branch,
        grouping(branch) = 1 as all_branches,
        count(*) as successful_runs,
        quantile_cont(duration_seconds, 0.5) as p50_duration_seconds,
        quantile_cont(duration_seconds, 0.95) as p95_duration_seconds,

    from runs
    group by grouping sets ((week_start, project_slug, workflow_name, branch), (week_start, project_slug, workflow_name))

)

select *, {{ owner_columns() }} from final
