-- p95 of max CPU/RAM over the trailing 30 days; needed = p95% x class size / headroom;
-- recommend the cheapest class of the same family covering both (else the largest).
with

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

resource_classes as (

    select * from {{ ref('resource_classes') }}

),

windowed as (

    select job_runs.*
    from job_runs
    cross join dates
    where job_runs.job_run_date >= dates.as_of_date - 29

),

utilisation as (

    select
        org_id,
        project_id,
        any_value(project_slug) as project_slug,
        job_name,
        executor,
        resource_class,
        count(*) as job_runs,
        count(*) filter (where max_cpu_pct is not null and max_ram_pct is not null) as runs_with_utilisation,
        quantile_cont(max_cpu_pct, 0.95) filter (
            where max_cpu_pct is not null and max_ram_pct is not null
        ) as p95_max_cpu_pct,
        quantile_cont(max_ram_pct, 0.95) filter (
            where max_cpu_pct is not null and max_ram_pct is not null
        ) as p95_max_ram_pct,
        sum(billed_minutes) as billed_minutes_30d,

    from windowed
    group by org_id, project_id, job_name, executor, resource_class

),

sized as (

    select
        utilisation.*,
        resource_classes.family,
        resource_classes.vcpus as current_vcpus,
        resource_classes.ram_gb as current_ram_gb,
        resource_classes.credits_per_minute as current_credits_per_minute,
        utilisation.p95_max_cpu_pct / 100 * resource_classes.vcpus / {{ headroom() }} as needed_vcpus,
        utilisation.p95_max_ram_pct / 100 * resource_classes.ram_gb / {{ headroom() }} as needed_ram_gb,

    from utilisation
    left join resource_classes
        on utilisation.executor = resource_classes.executor
        and utilisation.resource_class = resource_classes.resource_class

),

covering as (

    select
        sized.project_id,
        sized.job_name,
        sized.executor,
        sized.resource_class,
        candidate.resource_class as recommended_resource_class,
        candidate.vcpus as recommended_vcpus,
        candidate.ram_gb as recommended_ram_gb,
        candidate.credits_per_minute as recommended_credits_per_minute,

    from sized
    inner join resource_classes as candidate
        on candidate.family = sized.family
        and candidate.vcpus >= sized.needed_vcpus
        and candidate.ram_gb >= sized.needed_ram_gb
    qualify row_number() over (
        partition by sized.project_id, sized.job_name, sized.executor, sized.resource_class
        order by candidate.credits_per_minute, candidate.vcpus, candidate.ram_gb, candidate.resource_class
    ) = 1

),

largest as (

    select
        family,
        resource_class as recommended_resource_class,
        vcpus as recommended_vcpus,
        ram_gb as recommended_ram_gb,
        credits_per_minute as recommended_credits_per_minute,

    from resource_classes
    qualify row_number() over (
        partition by family
        order by credits_per_minute desc, vcpus desc, resource_class
    ) = 1

),

recommended as (

    select
        sized.*,
        case
            when sized.needed_vcpus is null or sized.family is null then sized.resource_class
            else coalesce(covering.recommended_resource_class, largest.recommended_resource_class)
        end as recommended_resource_class,
        case
            when sized.needed_vcpus is null or sized.family is null then sized.current_vcpus
            else coalesce(covering.recommended_vcpus, largest.recommended_vcpus)
        end as recommended_vcpus,
        case
            when sized.needed_vcpus is null or sized.family is null then sized.current_ram_gb
            else coalesce(covering.recommended_ram_gb, largest.recommended_ram_gb)
        end as recommended_ram_gb,
        case
            when sized.needed_vcpus is null or sized.family is null then sized.current_credits_per_minute
            else coalesce(covering.recommended_credits_per_minute, largest.recommended_credits_per_minute)
        end as recommended_credits_per_minute,

    from sized
    left join covering
        on sized.project_id = covering.project_id
        and sized.job_name = covering.job_name
        and sized.executor is not distinct from covering.executor
        and sized.resource_class = covering.resource_class
    left join largest
        on sized.family = largest.family

),

final as (

    select
        dates.as_of_date - 29 as window_start_date,
        dates.as_of_date as window_end_date,
        recommended.org_id,
        recommended.project_id,
        recommended.project_slug,
        recommended.job_name,
        recommended.executor,
        recommended.resource_class,
        recommended.family,
        recommended.job_runs,
        recommended.runs_with_utilisation,
        recommended.p95_max_cpu_pct,
        recommended.p95_max_ram_pct,
        recommended.current_vcpus,
        recommended.current_ram_gb,
        recommended.current_credits_per_minute,
        recommended.needed_vcpus,
        recommended.needed_ram_gb,
        recommended.recommended_resource_class,
        recommended.recommended_vcpus,
        recommended.recommended_ram_gb,
        recommended.recommended_credits_per_minute,
        case
            when recommended.recommended_credits_per_minute < recommended.current_credits_per_minute then 'downsize'
            when recommended.recommended_credits_per_minute > recommended.current_credits_per_minute then 'upsize'
            else 'keep'
        end as recommendation,
        recommended.billed_minutes_30d,
        (recommended.current_credits_per_minute - recommended.recommended_credits_per_minute)
            * recommended.billed_minutes_30d as projected_monthly_savings_credits,
        (recommended.current_credits_per_minute - recommended.recommended_credits_per_minute)
            * recommended.billed_minutes_30d * {{ price_per_credit() }} as projected_monthly_savings_usd,

    from recommended
    cross join dates

)

select *, {{ owner_columns('job_name') }} from final
