-- Flake trend: flaked failures and flaky tests per ISO week.
-- One row per ISO week x project, from fct_flaky_tests_weekly: flaked_failures = failed
-- results on commits where the test flaked; flaky_tests = tests with at least one (a test
-- belongs to one project, so the counts add up across projects, not across weeks).
select
    week_start,
    project_slug,
    org_slug,
    team,
    sum(times_flaked) as flaked_failures,
    count(*) filter (where times_flaked > 0) as flaky_tests,
    sum(runs) as test_runs,
from fct_flaky_tests_weekly
group by week_start, project_slug, org_slug, team
order by week_start, project_slug
