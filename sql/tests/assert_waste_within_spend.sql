-- Each waste category is a subset of the spend of its day x project x workflow x job.
select *
from {{ ref('fct_waste_daily') }}
where {{ rebuilt_rows('spend_date') }}  -- an incremental build: its rebuilt days
    and (failed_credits > total_credits
    or rerun_credits > total_credits
    or flaky_failure_credits > failed_credits
    or flaky_failure_job_runs > failed_job_runs)
