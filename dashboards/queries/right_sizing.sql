-- Right-sizing recommendations with projected savings (trailing 30 days).
-- One row per project x job x executor x resource class whose recommendation is not
-- "keep", from fct_right_sizing: p95 of peak CPU and RAM, the recommended class (cheapest
-- of the same family covering both with the build's headroom), billed minutes and the
-- projected savings per 30 days (negative = an upsize costs more).
select
    project_slug,
    job_name,
    executor,
    resource_class,
    recommended_resource_class,
    recommendation,
    p95_max_cpu_pct,
    p95_max_ram_pct,
    job_runs,
    runs_with_utilisation,
    billed_minutes_30d,
    projected_monthly_savings_credits,
    projected_monthly_savings_usd,
    window_end_date,
from fct_right_sizing
where recommendation <> 'keep'
order by projected_monthly_savings_credits desc
