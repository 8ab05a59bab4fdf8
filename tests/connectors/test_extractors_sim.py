"""Every catalogued stream and handler against the in-process simulator, compared with its ground truth."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from operator import itemgetter

import httpx
import pytest
from connector_helpers import FakeSleep, run

simulator = pytest.importorskip("simulator")
from circleci_analytics.connectors import (  # noqa: E402
    CATALOGUE,
    CircleCIClient,
    JobRef,
    PaginationError,
    RetryPolicy,
    extract_job_tests,
    extract_projects,
    extract_stream,
)
from circleci_analytics.simulator import FaultRule, SimConfig, Simulator, create_app  # noqa: E402

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
    return CircleCIClient(sim.token, "http://sim/api/v2", transport=httpx.ASGITransport(app=create_app(sim)), **kwargs)


def _with(sim, fn, *args, **kwargs):
    async def go():
        async with _client(sim) as client:
            return await fn(client, *args, **kwargs)

    return run(go())


def _stream(sim, name, project_slug, workflow_name=None, **kwargs):
    context = {"project_slug": project_slug} | ({"workflow_name": workflow_name} if workflow_name else {})
    return _with(sim, extract_stream, CATALOGUE[name], context, **kwargs)


def _runs(sim, project, since=NOW - timedelta(days=90), watermark=None):
    """The workflow runs of every workflow of `project`, as the flows read them."""

    async def go():
        async with _client(sim) as client:
            return await asyncio.gather(*(extract_stream(client, CATALOGUE["workflow_runs"], {"project_slug": project.slug,
                                          "workflow_name": wf}, since=since, now=NOW, watermark=watermark)
                                          for wf in project.workflows))  # fmt: skip

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


def test_workflow_runs_equal_truth(sim, truth):
    project = sim.projects[0]  # has the workflow "build & test/e2e"
    extracts = _runs(sim, project)
    got = {r["workflow_id"]: r for e in extracts for r in e.table.to_pylist()}
    want = {r["id"]: r for r in _truth_runs(truth, project.slug)}
    assert want and set(got) == set(want)
    for run_id, w in want.items():
        g = got[run_id]
        assert (g["workflow_name"], g["branch"], g["status"]) == (w["workflow_name"], w["branch"], w["status"])
        assert g["created_at"] == w["created_at"] and g["stopped_at"] == w["stopped_at"]
        assert g["duration_seconds"] == w["duration_seconds"] and g["credits_used"] == w["credits_used"]
        assert g["is_approval"] == w["is_approval"] and g["scope"] == "all-branches"
    assert max(e.watermark for e in extracts if e.watermark) == max(w["created_at"] for w in want.values())


def test_workflow_runs_incremental_from_watermark(sim, truth):
    project = sim.projects[2]
    since = NOW - timedelta(days=12)
    extracts = _runs(sim, project, since=since)
    got = {r for e in extracts for r in e.table.column("workflow_id").to_pylist()}
    want = {r["id"] for r in _truth_runs(truth, project.slug, since=since)}
    assert want and got == want
    assert {e.start for e in extracts} == {since}


def _job_refs(sim, project, since):
    """Every job the workflows of `project` list since `since`, approval jobs and the jobs a
    re-run kept included (as the core API's workflow -> jobs listing has them), newest first."""
    refs = []
    for p, w in sim.truth().workflows():
        if p.slug == project.slug and w.created_at >= since:
            refs += [JobRef(p.slug, j.number, j.name, job_type=j.type, workflow_id=w.id, pipeline_id=w.pipeline.id,
                            job_started_at=j.started_at, job_status=j.status, workflow_created_at=w.created_at)
                     for j in w.jobs]  # fmt: skip
    return refs[::-1]


def test_job_tests_equal_truth(sim, truth):
    project = sim.projects[0]
    refs = _job_refs(sim, project, NOW - timedelta(days=4))
    result = _with(sim, extract_job_tests, refs, now=NOW)
    assert refs and result.skipped.get("approval", 0) > 0  # deploy holds on approval jobs
    numbers = {r.job_number for r in refs if r.job_number is not None}
    truth_rows = [
        r for r in truth.test_runs().to_pylist() if r["project_slug"] == project.slug and r["job_number"] in numbers
    ]
    key = itemgetter("job_number", "workflow_id", "pipeline_id", "classname", "name", "file", "result")
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
            res = await extract_job_tests(client, refs, state=result.state, now=NOW)
            return res, client.stats.calls["tests"]

    second, calls = run(again())
    assert second.extract.num_rows == 0 and calls == 0


def test_workflow_metrics_totals_match_truth(sim, truth):
    project = sim.projects[0]
    ext = _stream(sim, "workflow_metrics", project.slug)
    rows = ext.table.to_pylist()
    got = {r["workflow_name"]: r["total_runs"] for r in rows if r["scope"] == "all-branches"}
    want = Counter(r["workflow_name"] for r in _truth_runs(truth, project.slug, since=NOW - timedelta(days=90)))
    assert got == dict(want)
    default = {r["workflow_name"]: r["total_runs"] for r in rows if r["scope"] == "default-branch"}
    branch = project.default_branch
    assert default == dict(
        Counter(
            r["workflow_name"] for r in _truth_runs(truth, project.slug, branch=branch, since=NOW - timedelta(days=90))
        )
    )


def test_workflow_summary_job_metrics_timeseries(sim, truth):
    project = sim.projects[0]
    name = "build & test/e2e"

    summary = _stream(sim, "workflow_summary", project.slug, name)
    jobs = _stream(sim, "workflow_job_metrics", project.slug, name)
    ts = _stream(sim, "job_timeseries", project.slug, name, since=NOW - timedelta(days=90), now=NOW)
    runs = _truth_runs(truth, project.slug, since=NOW - timedelta(days=90))
    by_scope = {r["scope"]: r["total_runs"] for r in summary.table.to_pylist()}
    assert by_scope["all-branches"] == sum(r["workflow_name"] == name for r in runs)
    assert by_scope["default-branch"] == sum(r["workflow_name"] == name and r["branch"] == project.default_branch
                                             for r in runs)  # fmt: skip
    # job metrics and the daily time series cover the same default-branch job runs
    per_job = {r["job_name"]: r["total_runs"] for r in jobs.table.to_pylist()}
    ts_totals = Counter()
    for r in ts.table.to_pylist():
        ts_totals[r["job_name"]] += r["total_runs"]
    assert per_job and per_job == dict(ts_totals)
    assert ts.watermark == max(r["bucket_start"] for r in ts.table.to_pylist())


def test_flaky_tests_and_test_metrics(sim, truth):
    project = sim.projects[0]
    flaky = _stream(sim, "flaky_tests", project.slug)
    tm = _stream(sim, "test_metrics", project.slug, "build & test/e2e")
    want = truth.flaky_tests()
    assert flaky.num_rows and flaky.num_rows == len(sim.backend.flaky_tests(project.slug)["flaky_tests"])
    assert {(r["job_name"], r["classname"], r["test_name"]) for r in flaky.table.to_pylist()} <= {
        (j, c, t) for (p, j, c, t) in want if p == project.slug
    }
    categories = set(tm.table.column("category").to_pylist())
    assert categories == {"most_failed", "slowest"} and set(tm.table.column("scope").to_pylist()) == {"default-branch"}


def test_flaky_tests_kebab_equals_snake():
    snake = Simulator(SimConfig(seed=7, preset="tiny", now=NOW))
    kebab = Simulator(SimConfig(seed=7, preset="tiny", now=NOW, flaky_keys="kebab"))
    slug = snake.projects[0].slug
    a = _stream(snake, "flaky_tests", slug).table.drop_columns(["extracted_at"])
    b = _stream(kebab, "flaky_tests", slug).table.drop_columns(["extracted_at"])
    assert a.num_rows > 0 and a.equals(b)


def test_transient_fault_retried_and_counted():
    sim = Simulator(
        SimConfig(
            seed=7,
            preset="tiny",
            now=NOW,
            faults=(FaultRule("status", route="getProjectBySlug", calls=(1, 2), status=503),),
        )
    )

    async def go():
        async with _client(sim) as client:
            ext = await extract_projects(client, [sim.projects[0].slug])
            return ext, client.stats

    ext, stats = run(go())
    assert ext.table.column("project_id").to_pylist() == [sim.projects[0].id]
    assert stats.calls["core"] == 3 and stats.retries["core"] == 2


def test_repeated_page_token_fault_detected():
    sim = Simulator(
        SimConfig(
            seed=7,
            preset="tiny",
            now=NOW,
            page_size=3,
            faults=(FaultRule("repeat_page_token", route="getProjectWorkflowRuns", calls=(2,)),),
        )
    )
    project = sim.projects[0]
    with pytest.raises(PaginationError, match="repeated"):
        _stream(sim, "workflow_runs", project.slug, project.workflows[0], since=NOW - timedelta(days=30), now=NOW)


def test_bad_token_is_auth_error(sim):
    from circleci_analytics.connectors import AuthError

    async def go():
        async with CircleCIClient(
            "not-the-token", "http://sim/api/v2", transport=httpx.ASGITransport(app=create_app(sim))
        ) as client:
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
                runs = await extract_stream(
                    client,
                    CATALOGUE["workflow_runs"],
                    {"project_slug": project.slug, "workflow_name": "build & test/e2e"},
                    since=NOW - timedelta(days=90),
                    now=NOW,
                )
                return projects, runs

        projects, runs = run(go())
    assert projects.table.column("project_id").to_pylist() == [p.id for p in sim.projects]
    want = {r["id"] for r in _truth_runs(truth, project.slug) if r["workflow_name"] == "build & test/e2e"}
    assert want and set(runs.table.column("workflow_id").to_pylist()) == want
