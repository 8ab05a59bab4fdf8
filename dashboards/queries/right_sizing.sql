-- Right-sizing recommendations with projected savings (trailing 30 days).
-- One row per project x job x executor x resource class whose recommendation is not
-- "keep", from fct_right_sizing: p95 of peak CPU and RAM, the recommended class (cheapest
-- of the same family covering both with the build's headroom), billed minutes and the
-- projected savings per 30 days (negative = an upsize costs more). project_name
-- (dim_projects) is a display label.
with sizing as (
    select * from fct_right_sizing
),

projects as (
    select project_id, any_value(project_name) as project_name,
    from dim_projects
    group by project_id
),

final as (
    select
        sizing.project_slug,
        sizing.org_slug,
        sizing.team,
        coalesce(projects.project_name, sizing.project_slug) as project_name,
        sizing.job_name,
        sizing.executor,
        sizing.resource_class,
        sizing.recommended_resource_class,
        sizing.recommendation,
        sizing.p95_max_cpu_pct,
        sizing.p95_max_ram_pct,
        sizing.job_runs,
        sizing.runs_with_utilisation,
        sizing.billed_minutes_30d,
        sizing.projected_monthly_savings_credits,
        sizing.projected_monthly_savings_usd,
        sizing.window_end_date,
    from sizing
    left join projects using (project_id)
    where sizing.recommendation <> 'keep'
)

select * from final order by projected_monthly_savings_credits desc
