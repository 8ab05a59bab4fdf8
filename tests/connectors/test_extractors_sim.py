"""Every extractor against the in-process simulator, compared with its ground truth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from connector_helpers import FakeSleep, run

simulator = pytest.importorskip("simulator")
from circleci_analytics.simulator import FaultRule, SimConfig, Simulator, create_app  # noqa: E402

from circleci_analytics.connectors import (  # noqa: E402
    CircleCIClient,
    PaginationError,
    RetryPolicy,
    extract_branches,
    extract_flaky_tests,
    extract_job_tests,
    extract_job_timeseries,
    extract_org_summary,
    extract_project_summary,
    extract_projects,
    extract_test_metrics,
    extract_workflow_job_metrics,
    extract_workflow_jobs,
    extract_workflow_metrics,
    extract_workflow_runs,
    extract_workflow_summary,
    job_refs_from_table,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NO_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export")}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    # small pages so every paginated stream really paginates
    return Simulator(SimConfig(seed=7, preset="tiny", now=NOW, page_size=7, tests_page_size=4))


@pytest.fixture(scope="module")
def truth(sim):
    return sim.truth()


def _client(sim: Simulator, **kwargs) -> CircleCIClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, sleep=FakeSleep()))
    kwargs.setdefault("rate_limits", NO_LIMITS)
    return CircleCIClient(
        sim.token, "http://sim/api/v2", transport=httpx.ASGITransport(app=create_app(sim)), **kwargs
    )


def _with(sim, fn, *args, **kwargs):
    async def go():
        async with _client(sim) as client:
            return await fn(client, *args, **kwargs)

    return run(go())


def _truth_runs(truth, slug, *, branch=None, since=None):
    rows = [r for r in truth.workflow_runs().to_pylist() if r["project_slug"] == slug]
    if branch is not None:
        rows = [r for r in rows if r["branch"] == branch]
    if since is not None:
        rows = [r for r in rows if r["created_at"] >= since]
    return rows


def test_project_resolution_matches_sim(sim):
    slugs = [p.slug for p in sim.projects]
    ext = _with(sim, extract_projects, slugs)
    rows = ext.table.to_pylist()
    assert [r["project_id"] for r in rows] == [p.id for p in sim.projects]
    assert [r["default_branch"] for r in rows] == [p.default_branch for p in sim.projects]
    assert {r["org_id"] for r in rows} == {sim.org.id}
    assert any(s.startswith("circleci/") for s in slugs)  # opaque slug resolved too


@pytest.mark.parametrize("scope", ["all-branches", "default-branch"])
def test_workflow_runs_equal_truth(sim, truth, scope):
    project = sim.projects[0]  # has the workflow "build & test/e2e"
    ext = _with(sim, extract_workflow_runs, project.slug, project.workflows, scope=scope, now=NOW)
    got = {r["workflow_id"]: r for r in ext.table.to_pylist()}
    branch = project.default_branch if scope == "default-branch" else None
    want = {r["id"]: r for r in _truth_runs(truth, project.slug, branch=branch)}
    assert want and set(got) == set(want)
    for run_id, w in want.items():
        g = got[run_id]
        assert (g["workflow_name"], g["branch"], g["status"]) == (w["workflow_name"], w["branch"], w["status"])
        assert g["created_at"] == w["created_at"] and g["stopped_at"] == w["stopped_at"]
        assert g["duration_seconds"] == w["duration_seconds"] and g["credits_used"] == w["credits_used"]
        assert g["is_approval"] == w["is_approval"]
    assert ext.watermark == max(w["created_at"] for w in want.values())


def test_workflow_runs_incremental_from_watermark(sim, truth):
    project = sim.projects[2]
    watermark = NOW - timedelta(days=10)
    ext = _with(sim, extract_workflow_runs, project.slug, project.workflows, watermark=watermark, now=NOW)
    got = set(ext.table.column("workflow_id").to_pylist())
    want = {r["id"] for r in _truth_runs(truth, project.slug, since=watermark - timedelta(days=2))}
    assert want and got == want
    assert ext.start == watermark - timedelta(days=2)


def test_job_tests_equal_truth(sim, truth):
    project = sim.projects[0]

    async def go():
        async with _client(sim) as client:
            jobs = await extract_workflow_jobs(client, project.slug, since=NOW - timedelta(days=4))
            refs = job_refs_from_table(jobs)
            result = await extract_job_tests(client, refs, now=NOW)
            return jobs, result

    jobs, result = run(go())
    assert jobs.num_rows and result.skipped.get("approval", 0) > 0  # deploy holds on approval jobs
    numbers = {r.job_number for r in job_refs_from_table(jobs) if r.job_number is not None}
    truth_rows = [
        r for r in truth.test_runs().to_pylist() if r["project_slug"] == project.slug and r["job_number"] in numbers
    ]
    key = lambda r: (r["job_number"], r["workflow_id"], r["pipeline_id"], r["classname"], r["name"], r["file"], r["result"])  # noqa: E731
    got = result.extract.table.to_pylist()
    assert truth_rows and Counter(map(key, got)) == Counter(map(key, truth_rows))
    by_key = {key(r): r for r in truth_rows}
    for row in got:
        want = by_key[key(row)]
        assert row["run_time_seconds"] == pytest.approx(want["run_time"])
        assert row["job_started_at"] == want["job_started_at"] and row["job_name"] == want["job_name"]
        assert row["message"] == want["message"] and row["source"] == "junit"
    # the learned state makes the second run a no-op
    async def again():
        async with _client(sim) as client:
            res = await extract_job_tests(client, job_refs_from_table(jobs), state=result.state, now=NOW)
            return res, client.stats.calls["tests"]

    second, calls = run(again())
    assert second.extract.num_rows == 0 and calls == 0


def test_workflow_metrics_totals_match_truth(sim, truth):
    project = sim.projects[0]
    ext = _with(sim, extract_workflow_metrics, project.slug, scope="all-branches", reporting_window="last-30-days")
    got = {r["workflow_name"]: r["total_runs"] for r in ext.table.to_pylist()}
    want = Counter(r["workflow_name"] for r in _truth_runs(truth, project.slug, since=NOW - timedelta(days=30)))
    assert got == dict(want)


def test_workflow_summary_job_metrics_timeseries(sim, truth):
    project = sim.projects[0]
    name = "build & test/e2e"

    async def go():
        async with _client(sim) as client:
            summary = await extract_workflow_summary(client, project.slug, name, scope="all-branches")
            jobs = await extract_workflow_job_metrics(client, project.slug, name, scope="default-branch", reporting_window="last-90-days")
            ts = await extract_job_timeseries(client, project.slug, name, start=NOW - timedelta(days=90), end=NOW)
            return summary, jobs, ts

    summary, jobs, ts = run(go())
    runs = _truth_runs(truth, project.slug, since=NOW - timedelta(days=90))
    assert summary.table.column("total_runs")[0].as_py() == sum(r["workflow_name"] == name for r in runs)
    assert set(summary.extra["workflow_names"]) == set(project.workflows)
    # job metrics and the daily time series cover the same default-branch job runs
    per_job = {r["job_name"]: r["total_runs"] for r in jobs.table.to_pylist()}
    ts_totals = Counter()
    for r in ts.table.to_pylist():
        ts_totals[r["job_name"]] += r["total_runs"]
    assert per_job and per_job == dict(ts_totals)


def test_summaries_branches_flaky_test_metrics(sim, truth):
    project = sim.projects[0]

    async def go():
        async with _client(sim) as client:
            org = await extract_org_summary(client, sim.org.slug, "last-30-days")
            page = await extract_project_summary(client, project.slug, "last-30-days")
            branches = await extract_branches(client, project.slug)
            flaky = await extract_flaky_tests(client, project.slug)
            tm = await extract_test_metrics(client, project.slug, "build & test/e2e", scope="all-branches")
            return org, page, branches, flaky, tm

    org, page, branches, flaky, tm = run(go())
    runs_30 = [r for r in truth.workflow_runs().to_pylist() if r["created_at"] >= NOW - timedelta(days=30)]
    assert org.org.table.column("total_runs")[0].as_py() == len(runs_30)
    assert set(org.projects.table.column("project_name").to_pylist()) == {p.name for p in sim.projects}
    assert page.project.table.column("project_id")[0].as_py() == project.id
    assert page.project.table.column("total_runs")[0].as_py() == sum(r["project_slug"] == project.slug for r in runs_30)
    want_branches = {r["branch"] for r in _truth_runs(truth, project.slug, since=NOW - timedelta(days=90))}
    assert set(branches.table.column("branch").to_pylist()) == want_branches
    assert flaky.num_rows == flaky.extra["total_flaky_tests"]
    assert tm.runs.num_rows > 0 and tm.tests.num_rows > 0


def test_flaky_tests_kebab_equals_snake():
    snake = Simulator(SimConfig(seed=7, preset="tiny", now=NOW))
    kebab = Simulator(SimConfig(seed=7, preset="tiny", now=NOW, flaky_keys="kebab"))
    slug = snake.projects[0].slug
    a = _with(snake, extract_flaky_tests, slug).table.drop_columns(["extracted_at"])
    b = _with(kebab, extract_flaky_tests, slug).table.drop_columns(["extracted_at"])
    assert a.num_rows > 0 and a.equals(b)


def test_transient_fault_retried_and_counted():
    sim = Simulator(SimConfig(seed=7, preset="tiny", now=NOW, faults=(FaultRule("status", route="getProjectBySlug", calls=(1, 2), status=503),)))

    async def go():
        async with _client(sim) as client:
            ext = await extract_projects(client, [sim.projects[0].slug])
            return ext, client.stats

    ext, stats = run(go())
    assert ext.table.column("project_id").to_pylist() == [sim.projects[0].id]
    assert stats.calls["core"] == 3 and stats.retries["core"] == 2


def test_repeated_page_token_fault_detected():
    sim = Simulator(
        SimConfig(seed=7, preset="tiny", now=NOW, page_size=3, faults=(FaultRule("repeat_page_token", route="getProjectWorkflowRuns", calls=(2,)),))
    )
    project = sim.projects[0]
    with pytest.raises(PaginationError, match="repeated"):
        _with(sim, extract_workflow_runs, project.slug, project.workflows[0], now=NOW)


def test_bad_token_is_auth_error(sim):
    from circleci_analytics.connectors import AuthError

    async def go():
        async with CircleCIClient("not-the-token", "http://sim/api/v2", transport=httpx.ASGITransport(app=create_app(sim))) as client:
            await extract_projects(client, [sim.projects[0].slug])

    with pytest.raises(AuthError) as info:
        run(go())
    assert "not-the-token" not in str(info.value)


@pytest.mark.slow
def test_real_loopback_server(sim, truth):
    from circleci_analytics.simulator.server import running_server

    project = sim.projects[0]
    with running_server(sim) as base_url:

        async def go():
            async with CircleCIClient(sim.token, base_url, rate_limits=NO_LIMITS) as client:
                projects = await extract_projects(client, [p.slug for p in sim.projects])
                runs = await extract_workflow_runs(client, project.slug, "build & test/e2e", now=NOW)
                return projects, runs

        projects, runs = run(go())
    assert projects.table.column("project_id").to_pylist() == [p.id for p in sim.projects]
    want = {r["id"] for r in _truth_runs(truth, project.slug) if r["workflow_name"] == "build & test/e2e"}
    assert want and set(runs.table.column("workflow_id").to_pylist()) == want
