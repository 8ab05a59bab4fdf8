-- Flaky = passed and failed on the same commit. Flip rate over time-ordered
-- non-skipped results; smoothed with Laplace's rule: (flips + 1) / (transitions + 2).
with

tests as (

    select * from {{ ref('int_test_results_flagged') }}
    where result <> 'skipped'

),

job_runs as (

    select * from {{ ref('int_job_runs_enriched') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

ordered as (

    select
        tests.*,
        lag(is_failure) over (
            partition by project_slug, job_name, classname, test_name
            order by job_started_at, job_number
        ) as previous_is_failure,

    from tests

),

windows as (

    select
        cast(as_of_date - 20 as timestamp) at time zone 'UTC' as week_ago_start,
        cast(as_of_date - 6 as timestamp) at time zone 'UTC' as week_ago_end,
    from dates

),

per_test as (

    select
        project_slug,
        job_name,
        classname,
        test_name,
        arg_max(file, job_started_at) as file,
        count(*) as runs,
        count(*) filter (where is_failure) as failures,
        count(*) filter (where result = 'success') as successes,
        count(distinct commit_key) as commits,
        count(distinct commit_key) filter (where flaked_on_commit) as commits_flaked,
        count(*) filter (where flaked_on_commit and is_failure) as times_flaked,
        count(*) filter (where previous_is_failure is not null and previous_is_failure <> is_failure) as flips,
        min(job_started_at) filter (where flaked_on_commit and is_failure) as first_flake_at,
        max(job_started_at) filter (where flaked_on_commit and is_failure) as last_flake_at,
        sum(run_time_seconds) filter (where flaked_on_commit and is_failure) as time_wasted_seconds,
        coalesce(bool_or(
            flaked_on_commit and is_failure
            and job_started_at >= windows.week_ago_start and job_started_at < windows.week_ago_end
        ), false) as flaky_week_ago,

    from ordered
    cross join windows
    group by project_slug, job_name, classname, test_name
    having count(*) filter (where flaked_on_commit and is_failure) > 0

),

flaky_failure_shares as (

    select
        tests.project_slug,
        tests.job_name,
        tests.classname,
        tests.test_name,
        count(*) as flaky_job_failures,
        sum(job_runs.run_seconds / job_runs.failed_tests) as job_seconds_wasted,
        sum(cast(job_runs.total_credits as double) / job_runs.failed_tests) as credits_wasted,

    from tests
    inner join job_runs
        on tests.project_slug = job_runs.project_slug
        and tests.job_number = job_runs.job_number
    where job_runs.is_flaky_failure
        and job_runs.job_status = 'failed'  -- implied by the flag; filters the job runs before the join
        and tests.is_failure
    group by all

),

final as (

    select
        per_test.project_slug,
        per_test.job_name,
        per_test.classname,
        per_test.test_name,
        per_test.file,
        per_test.runs,
        per_test.failures,
        per_test.successes,
        per_test.commits,
        per_test.commits_flaked,
        per_test.times_flaked,
        per_test.flips,
        case when per_test.runs > 1 then per_test.flips / (per_test.runs - 1) end as flip_rate,
        (per_test.flips + 1) / (per_test.runs - 1 + 2) as flip_rate_smoothed,
        per_test.first_flake_at,
        per_test.last_flake_at,
        per_test.last_flake_at >= cast(dates.as_of_date + 1 as timestamptz) - interval 14 day as currently_flaky,
        per_test.flaky_week_ago,
        per_test.time_wasted_seconds,
        coalesce(shares.flaky_job_failures, 0) as flaky_job_failures,
        coalesce(shares.job_seconds_wasted, 0) as job_seconds_wasted,
        cast(coalesce(shares.credits_wasted, 0) as decimal(38, 6)) as credits_wasted,
        cast(coalesce(shares.credits_wasted, 0) as decimal(38, 6)) * {{ price_per_credit() }} as usd_wasted,

    from per_test
    cross join dates
    left join flaky_failure_shares as shares
        on per_test.project_slug = shares.project_slug
        and per_test.job_name is not distinct from shares.job_name
        and per_test.classname is not distinct from shares.classname
        and per_test.test_name is not distinct from shares.test_name

)

select *, {{ owner_columns('job_name') }} from final
