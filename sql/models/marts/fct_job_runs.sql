with

job_runs as (

    select * from {{ ref('int_job_runs_enriched') }}

),

final as (

    select
        job_id,
        org_id,
        project_id,
        project_slug,
        project_name,
        pipeline_id,
        pipeline_number,
        branch,
        workflow_id,
        workflow_name,
        rerun_attempt,
        is_rerun,
        job_name,
        job_number,
        job_status,
        is_failed,
        job_run_date,
        queued_at,
        started_at,
        stopped_at,
        queue_seconds,
        run_seconds,
        executor,
        resource_class,
        operating_system,
        parallelism,
        billed_minutes,
        median_cpu_pct,
        max_cpu_pct,
        median_ram_pct,
        max_ram_pct,
        compute_credits,
        dlc_credits,
        user_credits,
        storage_credits,
        network_credits,
        lease_credits,
        lease_overage_credits,
        ipranges_credits,
        total_credits,
        total_usd,
        failed_tests,
        is_flaky_failure,

    from job_runs

)

select *, {{ owner_columns('job_name') }} from final
