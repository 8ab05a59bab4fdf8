-- The build's parameters, as-of date and how far back each kind of data goes (one row):
-- dashboards show the as-of date in their headers and compare a week with the week before
-- only where data covers both.
with

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

workflow_runs as (

    select min(run_date) as first_date from {{ ref('fct_workflow_runs') }}

),

test_results as (

    select min(job_started_date) as first_date from {{ ref('int_test_results_flagged') }}

),

final as (

    select
        {{ price_per_credit() }} as price_per_credit,
        {{ headroom() }} as headroom,
        dates.as_of_date,
        cast(current_timestamp as timestamptz) as built_at,
        {{ build_started_at() }} as build_started_at,
        {{ team_rules_json() }} as team_rules,
        dates.first_date as usage_first_date,
        workflow_runs.first_date as workflow_runs_first_date,
        test_results.first_date as test_results_first_date,

    from dates
    cross join workflow_runs
    cross join test_results

)

select * from final
