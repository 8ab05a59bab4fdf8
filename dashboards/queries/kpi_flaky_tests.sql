-- KPI: currently flaky tests (flaked within the last 14 days), week over week.
-- One row per project, from fct_flaky_tests: flaky_tests_now = tests with currently_flaky;
-- flaky_tests_week_ago = the same count as it stood 7 days earlier (flaky_week_ago: a flaked
-- failure, i.e. a failure on a commit where the test also passed, in the 14 days ending
-- as_of_date-7), computed when the warehouse is built.
select
    project_slug,
    count(*) filter (where currently_flaky) as flaky_tests_now,
    count(*) filter (where flaky_week_ago) as flaky_tests_week_ago,
from fct_flaky_tests
group by project_slug
order by project_slug
