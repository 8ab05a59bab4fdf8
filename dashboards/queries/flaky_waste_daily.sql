-- Credits wasted by flaky job failures per day.
-- One row per UTC day x project, from fct_waste_daily: flaky job failures (failed runs whose
-- failing tests all flaked on that commit), their credits and run seconds.
select
    spend_date as waste_date,
    project_slug,
    org_slug,
    team,
    sum(flaky_failure_job_runs) as flaky_job_failures,
    sum(flaky_failure_credits) as flaky_failure_credits,
    sum(flaky_failure_seconds) as flaky_failure_seconds,
from fct_waste_daily
group by spend_date, project_slug, org_slug, team
having sum(flaky_failure_job_runs) > 0
order by waste_date, project_slug
