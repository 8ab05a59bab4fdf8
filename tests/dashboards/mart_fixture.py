"""A stand-in warehouse for dashboard tests while (or where) `warehouse.build_warehouse` is absent.

Creates the mart tables documented in `sql/marts/schema.yml` with their documented columns
from the simulator's ground-truth tables, using deliberately simple logic: dashboard tests
check that pages show what the SQL returns, not that the marts are right (tests/sql does).
`build_test_warehouse` prefers the real build whenever it exists.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import duckdb

NOW = datetime(2026, 6, 1, tzinfo=UTC)

_MARTS = r"""
create table warehouse_meta as
select 0.0006 as price_per_credit, 0.8 as headroom, max(job_run_date) as as_of_date, now() as built_at from jr;

create table fct_job_runs as
select j.*, j.vcs_branch as branch, job_status in ('failed', 'infrastructure_fail') as is_failed,
       extract(epoch from started_at - queued_at) as queue_seconds,
       ceil(run_seconds / 60) * parallelism as billed_minutes,
       total_credits * 0.0006 as total_usd, false as is_flaky_failure
from jr as j;

create table fct_credit_spend_daily as
select job_run_date as spend_date, 'org' as org_id, project_id, project_slug, workflow_name, job_name,
       resource_class, executor, vcs_branch as branch, count(*) as job_runs, sum(run_seconds) as run_seconds,
       sum(compute_credits) as compute_credits, sum(dlc_credits) as dlc_credits, sum(user_credits) as user_credits,
       sum(storage_credits) as storage_credits, sum(network_credits) as network_credits,
       sum(lease_credits) as lease_credits, sum(lease_overage_credits) as lease_overage_credits,
       sum(ipranges_credits) as ipranges_credits, sum(total_credits) as total_credits,
       sum(total_credits) * 0.0006 as total_usd
from jr group by all;

create table fct_credit_month_to_date as
with m as (select as_of_date, date_trunc('month', as_of_date)::date as month_start,
                  last_day(as_of_date) as month_end from warehouse_meta),
p as (
  select s.project_id, s.project_slug,
         coalesce(sum(total_credits) filter (where spend_date >= m.month_start), 0) as mtd_credits,
         coalesce(sum(total_credits) filter (where spend_date > m.as_of_date - 7), 0) as trailing_7d_credits
  from fct_credit_spend_daily s, m group by all)
select m.as_of_date, m.month_start, m.month_end, datediff('day', m.month_start, m.as_of_date) + 1 as days_elapsed,
       datediff('day', m.as_of_date, m.month_end) as days_left, 'org' as org_id, p.project_id, p.project_slug,
       mtd_credits, mtd_credits * 0.0006 as mtd_usd, trailing_7d_credits,
       trailing_7d_credits / 7 as trailing_7d_mean_daily_credits,
       mtd_credits + trailing_7d_credits / 7 * datediff('day', m.as_of_date, m.month_end) as forecast_credits,
       (mtd_credits + trailing_7d_credits / 7 * datediff('day', m.as_of_date, m.month_end)) * 0.0006 as forecast_usd
from p, m;

create table fct_credit_movers_weekly as
with w as (select date_trunc('week', spend_date)::date as week_start, 'org' as org_id, project_id, project_slug,
                  workflow_name, sum(total_credits) as credits from fct_credit_spend_daily group by all),
j as (select coalesce(c.week_start, p.week_start + 7) as week_start, coalesce(c.project_id, p.project_id) as project_id,
             coalesce(c.project_slug, p.project_slug) as project_slug,
             coalesce(c.workflow_name, p.workflow_name) as workflow_name,
             coalesce(c.credits, 0) as credits, coalesce(p.credits, 0) as previous_week_credits
      from w c full join w p on c.project_id = p.project_id and c.workflow_name = p.workflow_name
                             and c.week_start = p.week_start + 7)
select *, week_start + 6 <= (select as_of_date from warehouse_meta) as is_complete_week, 'org' as org_id,
       credits - previous_week_credits as delta_credits,
       (credits - previous_week_credits) / nullif(previous_week_credits, 0) as delta_pct,
       (credits - previous_week_credits) * 0.0006 as delta_usd,
       rank() over (partition by week_start order by abs(credits - previous_week_credits) desc) as mover_rank
from j where week_start <= (select as_of_date from warehouse_meta);

create table fct_credit_anomalies as
with days as (select unnest(range((select min(job_run_date) from jr), (select as_of_date + 1 from warehouse_meta),
                                  interval 1 day))::date as spend_date),
p as (select distinct project_id, project_slug from jr),
d as (select days.spend_date, p.project_id, p.project_slug, coalesce(sum(s.total_credits), 0)::double as credits
      from days cross join p left join fct_credit_spend_daily s
        on s.spend_date = days.spend_date and s.project_id = p.project_id group by all),
w as (select *, count(*) over h as history_days, avg(credits) over h as trailing_28d_mean_credits,
             stddev_samp(credits) over h as trailing_28d_stddev_credits
      from d window h as (partition by project_id order by spend_date rows between 28 preceding and 1 preceding))
select *, 'org' as org_id,
       case when history_days >= 14 then trailing_28d_mean_credits + 3 * trailing_28d_stddev_credits end as threshold_credits,
       coalesce(history_days >= 14 and credits > trailing_28d_mean_credits + 3 * trailing_28d_stddev_credits, false) as is_anomaly,
       case when history_days >= 14 and credits > trailing_28d_mean_credits + 3 * trailing_28d_stddev_credits
            then credits - (trailing_28d_mean_credits + 3 * trailing_28d_stddev_credits) end as excess_credits
from w;

create table fct_test_runs as
select project_slug, job_name, job_number, job_id, pipeline_id, pipeline_id as commit_key, workflow_id,
       job_started_at, classname, name as test_name, file, result, result in ('failure', 'error') as is_failure,
       run_time as run_time_seconds, message
from tr;

create table fct_flaky_tests as
with r as (select * from fct_test_runs where result <> 'skipped'),
fc as (select project_slug, job_name, classname, test_name, commit_key from r group by all
       having bool_or(is_failure) and bool_or(result = 'success')),
ff as (select r.* from r join fc using (project_slug, job_name, classname, test_name, commit_key) where r.is_failure),
s as (select project_slug, job_name, classname, test_name, count(*) as times_flaked,
             count(distinct commit_key) as commits_flaked, min(job_started_at) as first_flake_at,
             max(job_started_at) as last_flake_at, sum(run_time_seconds) as time_wasted_seconds
      from ff group by all),
o as (select project_slug, job_name, classname, test_name, count(*) as runs,
             count(*) filter (where is_failure) as failures, count(*) filter (where not is_failure) as successes,
             count(distinct commit_key) as commits, max(file) as file
      from r group by all)
select o.*, s.commits_flaked, s.times_flaked, 0 as flips, 0.3 as flip_rate, 0.35 as flip_rate_smoothed,
       s.first_flake_at, s.last_flake_at,
       s.last_flake_at >= (select as_of_date - 13 from warehouse_meta)::timestamptz as currently_flaky,
       s.time_wasted_seconds, s.times_flaked as flaky_job_failures, s.times_flaked * 120.0 as job_seconds_wasted,
       s.times_flaked * 1.5 as credits_wasted, s.times_flaked * 1.5 * 0.0006 as usd_wasted
from s join o using (project_slug, job_name, classname, test_name);

create table fct_flaky_tests_weekly as
select date_trunc('week', job_started_at)::date as week_start, t.project_slug, t.job_name, t.classname, t.test_name,
       count(*) as runs, count(*) filter (where is_failure) as failures,
       count(*) filter (where is_failure) as times_flaked
from fct_test_runs t join fct_flaky_tests f using (project_slug, job_name, classname, test_name)
where result <> 'skipped' group by all;

create table fct_waste_daily as
select job_run_date as spend_date, 'org' as org_id, project_id, project_slug, workflow_name, job_name,
       count(*) as job_runs, sum(total_credits) as total_credits,
       count(*) filter (where is_failed) as failed_job_runs,
       coalesce(sum(total_credits) filter (where is_failed), 0) as failed_credits,
       count(*) filter (where is_rerun) as rerun_job_runs,
       coalesce(sum(total_credits) filter (where is_rerun), 0) as rerun_credits,
       count(*) filter (where job_status = 'failed') as flaky_failure_job_runs,
       coalesce(sum(total_credits) filter (where job_status = 'failed'), 0) as flaky_failure_credits,
       coalesce(sum(run_seconds) filter (where job_status = 'failed'), 0) as flaky_failure_seconds
from fct_job_runs group by all;

create table fct_workflow_runs as
select id as workflow_id, project_slug, workflow_name, branch, null::boolean as is_default_branch, status,
       case when status = 'success' then 'success' when status in ('failed', 'error') then 'failure' else 'other' end as outcome,
       created_at, stopped_at, (created_at at time zone 'UTC')::date as run_date, duration_seconds, is_approval,
       credits_used as insights_credits, pipeline_id, rerun_of is not null as is_rerun
from wr;

create table fct_recoveries as
with o as (select *, lag(outcome) over (partition by project_slug, workflow_name, branch order by created_at, workflow_id) as prev
           from fct_workflow_runs where outcome in ('success', 'failure')),
st as (select *, sum(case when outcome = 'failure' and coalesce(prev, 'success') = 'success' then 1 else 0 end)
                   over (partition by project_slug, workflow_name, branch order by created_at, workflow_id) as streak
       from o),
g as (select project_slug, workflow_name, branch, streak,
             arg_min(workflow_id, created_at) filter (where outcome = 'failure') as first_failed_run_id,
             min(stopped_at) filter (where outcome = 'failure') as first_failed_stopped_at,
             min(created_at) filter (where outcome = 'failure') as first_failed_created_at,
             count(*) filter (where outcome = 'failure') as failed_runs,
             arg_min(workflow_id, created_at) filter (where outcome = 'success') as recovered_run_id,
             min(stopped_at) filter (where outcome = 'success') as recovered_at
      from st where streak > 0 group by all)
select project_slug, workflow_name, branch, first_failed_run_id, first_failed_created_at, first_failed_stopped_at,
       failed_runs, recovered_run_id, recovered_at,
       extract(epoch from recovered_at - first_failed_stopped_at) as recovery_seconds,
       date_trunc('week', recovered_at at time zone 'UTC')::date as recovery_week_start,
       recovered_at is null as is_open, null::double as open_age_seconds
from g where failed_runs > 0;

create table fct_mttr_weekly as
select project_slug, workflow_name, branch, recovery_week_start as week_start, count(*) as recoveries,
       avg(recovery_seconds) as mttr_mean_seconds, median(recovery_seconds) as mttr_median_seconds
from fct_recoveries where not is_open group by all;

create table fct_workflow_health_weekly as
select project_slug, workflow_name, branch, date_trunc('week', run_date)::date as week_start, count(*) as runs,
       count(*) filter (where outcome = 'success') as successful_runs,
       count(*) filter (where outcome = 'failure') as failed_runs,
       count(*) filter (where outcome = 'other') as other_runs,
       count(*) filter (where outcome = 'success') / nullif(count(*) filter (where outcome <> 'other'), 0) as success_rate,
       count(*) / 7 as throughput_runs_per_day,
       quantile_cont(duration_seconds, 0.5) filter (where outcome = 'success') as duration_p50_seconds,
       quantile_cont(duration_seconds, 0.95) filter (where outcome = 'success') as duration_p95_seconds
from fct_workflow_runs group by all;

create table fct_right_sizing as
select project_id, project_slug, job_name, executor, resource_class, 'docker' as family, count(*) as job_runs,
       count(max_cpu_pct) as runs_with_utilisation, quantile_cont(max_cpu_pct, 0.95) as p95_max_cpu_pct,
       quantile_cont(max_ram_pct, 0.95) as p95_max_ram_pct, 'small' as recommended_resource_class,
       case when resource_class = 'small' then 'keep' else 'downsize' end as recommendation,
       sum(ceil(run_seconds / 60) * parallelism) as billed_minutes_30d,
       sum(ceil(run_seconds / 60) * parallelism) * 5 as projected_monthly_savings_credits,
       sum(ceil(run_seconds / 60) * parallelism) * 5 * 0.0006 as projected_monthly_savings_usd,
       (select as_of_date from warehouse_meta) as window_end_date
from fct_job_runs
where job_run_date > (select as_of_date - 30 from warehouse_meta)
group by all;
"""


def build_fixture_warehouse(path: Path, *, empty: bool = False, preset: str = "tiny") -> Path:
    """Write a DuckDB file with the documented marts, from the simulator truth (or empty)."""
    from simulator import SimConfig, Simulator

    truth = Simulator(SimConfig(seed=7, preset=preset, now=NOW)).truth()
    jr, tr, wr = truth.job_runs(), truth.test_runs(), truth.workflow_runs()
    if empty:
        jr, tr, wr = jr.slice(0, 0), tr.slice(0, 0), wr.slice(0, 0)
    with duckdb.connect(str(path)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("jr", jr)
        con.register("tr", tr)
        con.register("wr", wr)
        con.execute(_MARTS)
    return path


TRUTH_LAKE = Path(__file__).resolve().parents[1] / "sql" / "truth_lake.py"


def real_build_available() -> bool:
    """The real `warehouse.build_warehouse` and the SQL tests' truth-to-lake helper both exist."""
    try:
        from warehouse import Lake, build_warehouse  # noqa: F401
    except ImportError:
        return False
    return TRUTH_LAKE.is_file()


def _truth_lake():
    spec = importlib.util.spec_from_file_location("dash_truth_lake", TRUTH_LAKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_real_warehouse(workdir: Path, *, preset: str = "tiny", empty: bool = False) -> Path:
    """Land the simulator's ground truth in a lake (tests/sql/truth_lake.py) and run the real
    `build_warehouse` on it; with `empty`, build from an empty lake (every mart, no rows)."""
    from simulator import SimConfig, Simulator
    from warehouse import Lake, build_warehouse

    lake = Lake(workdir / "lake")
    if not empty:
        _truth_lake().land_truth(lake, Simulator(SimConfig(seed=7, preset=preset, now=NOW)))
    db = workdir / "warehouse.duckdb"
    build_warehouse(lake, db)
    return db
