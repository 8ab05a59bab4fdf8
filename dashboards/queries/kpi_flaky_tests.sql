-- KPI: currently flaky tests (flaked within the last 14 days), week over week.
-- One row per project, from fct_flaky_tests: flaky_tests_now = tests with currently_flaky;
-- flaky_tests_week_ago = the same count as it stood 7 days earlier (flaky_week_ago: a flaked
-- failure, i.e. a failure on a commit where the test also passed, in the 14 days ending
-- as_of_date-7), computed when the warehouse is built. previous_covered: test results reach
-- back to the start of that earlier window, as_of_date-20 (else week over week is shown as n/a).
with meta as (
    select test_results_first_date <= as_of_date - 20 as previous_covered from warehouse_meta
)

select
    flaky.project_slug,
    flaky.org_slug,
    flaky.team,
    count(*) filter (where flaky.currently_flaky) as flaky_tests_now,
    count(*) filter (where flaky.flaky_week_ago) as flaky_tests_week_ago,
    any_value(meta.previous_covered) as previous_covered,
from fct_flaky_tests as flaky
cross join meta
group by flaky.project_slug, flaky.org_slug, flaky.team
order by flaky.project_slug
