-- One row per job run of the usage export: renamed, typed, de-duplicated on job_id
-- (latest extraction wins). Credits stay DECIMAL (exact).
with

-- Latest extraction wins (macros/latest_rows.sql: only duplicated ids are ranked).
{{ latest_rows(
    'deduplicated', source('lake', 'usage_job_runs'), ['job_id'],
    'extracted_at desc, export_window_end desc', 'job_run_started_at'
) }},

renamed as (

    select
        job_id,
        organization_id as org_id,
        organization_name as org_name,
        project_id,
        project_name,
        vcs_name,
        vcs_url,
        vcs_branch as branch,
        pipeline_id,
        pipeline_created_at,
        pipeline_number,
        pipeline_trigger_source as trigger_source,
        workflow_id,
        workflow_name,
        workflow_first_job_queued_at,
        workflow_first_job_started_at,
        workflow_stopped_at,
        is_workflow_successful,
        job_name,
        job_run_number as job_number,
        cast(coalesce(job_run_started_at, job_run_date) as date) as job_run_date,
        job_run_queued_at as queued_at,
        job_run_started_at as started_at,
        job_run_stopped_at as stopped_at,
        job_build_status as job_status,
        resource_class,
        operating_system,
        executor,
        parallelism,
        job_run_seconds as run_seconds,
        median_cpu_utilization_pct as median_cpu_pct,
        max_cpu_utilization_pct as max_cpu_pct,
        median_ram_utilization_pct as median_ram_pct,
        max_ram_utilization_pct as max_ram_pct,
        compute_credits,
        dlc_credits,
        user_credits,
        storage_credits,
        network_credits,
        lease_credits,
        lease_overage_credits,
        ipranges_credits,
        total_credits,
        export_window_start,
        export_window_end,
        extracted_at,

    from deduplicated

)

select * from renamed
