-- Every org's teams add up to the org: in the forecast mart (team rows vs the org row), and
-- the org row against month-to-date credits summed straight from the job runs.
with

forecast as (

    select * from {{ ref('fct_credit_forecast') }}

),

dates as (

    select * from {{ ref('int_reporting_dates_resolved') }}

),

job_runs as (

    select * from {{ ref('int_job_runs_keyed') }}

),

teams as (

    select
        org_id,
        org_slug,
        sum(mtd_credits) as mtd_credits,
        sum(forecast_credits) as forecast_credits,
    from forecast
    where not is_org_total
    group by org_id, org_slug

),

from_job_runs as (

    select job_runs.org_id, {{ org_slug_of('job_runs.project_slug') }} as org_slug, sum(job_runs.total_credits) as mtd_credits
    from job_runs
    cross join dates
    where job_runs.job_run_date between date_trunc('month', dates.as_of_date) and dates.as_of_date
    group by all

)

select
    orgs.org_id,
    orgs.org_slug,
    orgs.mtd_credits,
    teams.mtd_credits as team_mtd_credits,
    from_job_runs.mtd_credits as job_run_mtd_credits,
    orgs.forecast_credits,
    teams.forecast_credits as team_forecast_credits,
from forecast as orgs
left join teams on orgs.org_id = teams.org_id and orgs.org_slug = teams.org_slug
left join from_job_runs on orgs.org_id = from_job_runs.org_id and orgs.org_slug = from_job_runs.org_slug
where orgs.is_org_total
    and (
        teams.org_id is null
        or orgs.mtd_credits <> teams.mtd_credits
        or orgs.forecast_credits <> teams.forecast_credits
        or orgs.mtd_credits <> coalesce(from_job_runs.mtd_credits, 0)
    )
