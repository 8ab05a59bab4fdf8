{{ config(severity="warn") }}
-- Per job run, the credit types add up to TOTAL_CREDITS (a warning: the export is the
-- source of truth, and CircleCI may add a credit type before our schema knows it).
select job_id, total_credits,
    coalesce(compute_credits, 0) + coalesce(dlc_credits, 0) + coalesce(user_credits, 0)
    + coalesce(storage_credits, 0) + coalesce(network_credits, 0) + coalesce(lease_credits, 0)
    + coalesce(lease_overage_credits, 0) + coalesce(ipranges_credits, 0) as sum_of_types,
from {{ ref('fct_job_runs') }}
where {{ rebuilt_rows('job_run_date') }}  -- an incremental build: its rebuilt days
    and total_credits <> coalesce(compute_credits, 0) + coalesce(dlc_credits, 0) + coalesce(user_credits, 0)
    + coalesce(storage_credits, 0) + coalesce(network_credits, 0) + coalesce(lease_credits, 0)
    + coalesce(lease_overage_credits, 0) + coalesce(ipranges_credits, 0)
