-- Activity per branch over the whole history: workflow runs and their outcomes
-- (fct_workflow_runs: Insights and usage export), credits (usage export), first and last
-- activity, and the same over the trailing 30 days (as_of_date - 29 .. as_of_date).
with

runs as (

    select * from {{ ref('fct_workflow_runs') }}

),

spend as (

    select * from {{ ref('fct_credit_spend_branch_daily') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

run_stats as (

    select
        runs.project_slug,
        runs.branch,
        any_value(runs.org_id) as org_id,
        bool_or(runs.is_default_branch) as is_default_branch,
        count(*) as workflow_runs,
        count(*) filter (where runs.outcome = 'success') as successful_runs,
        count(*) filter (where runs.outcome = 'failure') as failed_runs,
        count(*) filter (where runs.run_date > dates.as_of_date - 30) as workflow_runs_30d,
        count(*) filter (where runs.run_date > dates.as_of_date - 30 and runs.outcome = 'success')
            as successful_runs_30d,
        count(*) filter (where runs.run_date > dates.as_of_date - 30 and runs.outcome = 'failure')
            as failed_runs_30d,
        min(runs.created_at) as first_run_at,
        max(coalesce(runs.stopped_at, runs.created_at)) as last_activity_at,

    from runs
    cross join dates
    group by runs.project_slug, runs.branch

),

spend_stats as (

    select
        spend.project_slug,
        spend.branch,
        any_value(spend.org_id) as org_id,
        sum(spend.job_runs) as job_runs,
        sum(spend.total_credits) as total_credits,
        coalesce(sum(spend.total_credits) filter (where spend.spend_date > dates.as_of_date - 30), 0) as credits_30d,
        max(spend.spend_date) as last_spend_date,

    from spend
    cross join dates
    group by spend.project_slug, spend.branch

),

final as (

    select
        coalesce(run_stats.org_id, spend_stats.org_id) as org_id,
        coalesce(run_stats.project_slug, spend_stats.project_slug) as project_slug,
        coalesce(run_stats.branch, spend_stats.branch) as branch,
        coalesce(run_stats.is_default_branch, false) as is_default_branch,
        coalesce(run_stats.workflow_runs, 0) as workflow_runs,
        coalesce(run_stats.successful_runs, 0) as successful_runs,
        coalesce(run_stats.failed_runs, 0) as failed_runs,
        {{ success_rate('run_stats.successful_runs', 'run_stats.failed_runs') }} as success_rate,
        coalesce(run_stats.workflow_runs_30d, 0) as workflow_runs_30d,
        coalesce(run_stats.successful_runs_30d, 0) as successful_runs_30d,
        coalesce(run_stats.failed_runs_30d, 0) as failed_runs_30d,
        coalesce(spend_stats.job_runs, 0) as job_runs,
        coalesce(spend_stats.total_credits, 0) as total_credits,
        coalesce(spend_stats.credits_30d, 0) as credits_30d,
        run_stats.first_run_at,
        run_stats.last_activity_at,
        spend_stats.last_spend_date,

    from run_stats
    full outer join spend_stats
        on run_stats.project_slug = spend_stats.project_slug
        and run_stats.branch is not distinct from spend_stats.branch

)

select *, {{ owner_columns() }} from final
