-- The daily spend mart holds every credit of every job run, per type and in total.
with

job_runs as (

    select
        sum(total_credits) as total_credits,
        sum(compute_credits) as compute_credits,
        count(*) as job_runs,
    from {{ ref('fct_job_runs') }}
    where {{ rebuilt_rows('job_run_date') }}  -- an incremental build: its rebuilt days

),

spend as (

    select
        sum(total_credits) as total_credits,
        sum(compute_credits) as compute_credits,
        sum(job_runs) as job_runs,
    from {{ ref('fct_credit_spend_daily') }}
    where {{ rebuilt_rows('spend_date') }}

)

select job_runs.*, spend.*
from job_runs
cross join spend
where job_runs.total_credits is distinct from spend.total_credits
    or job_runs.compute_credits is distinct from spend.compute_credits
    or job_runs.job_runs <> coalesce(spend.job_runs, 0)
