-- A flaky job failure is a failed job run with at least one failing test.
select job_id, job_status, failed_tests
from {{ ref('fct_job_runs') }}
where {{ rebuilt_rows('job_run_date') }}  -- an incremental build: its rebuilt days
    and is_flaky_failure
    and (job_status <> 'failed' or failed_tests = 0)
