"""Ground-truth consistency: what the API serves equals what `GroundTruth` says, and the
planted patterns (cost spike, flaky tests, failure streaks, over-provisioning, approvals,
opaque slugs, awkward workflow names) are really there."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sim_helpers import NOW, all_pages, quote_segment, read_csv_part

from circleci_analytics.simulator.history import CREDIT_TYPES
from circleci_analytics.simulator.truth import GroundTruth
from circleci_analytics.simulator.usage_export import _ts

CREDIT_COLUMNS = [f"{c.upper()}_CREDITS" for c in CREDIT_TYPES] + ["TOTAL_CREDITS"]


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def export(make_sim_module_export):
    """A usage export of the whole tiny history (rows of every part, header per part)."""
    sim, c = make_sim_module_export
    start = sim.history.start
    end = NOW - timedelta(minutes=5)
    # The history is longer than one export may be (31 days): two back-to-back windows.
    middle = start + timedelta(days=25)
    headers, rows = [], []
    for w_start, w_end in ((start, middle - timedelta(seconds=1)), (middle, end)):
        r = c.post(f"/organizations/{sim.org.id}/usage_export_job", json={"start": _iso(w_start), "end": _iso(w_end)})
        assert r.status_code == 201, r.text
        job = r.json()["usage_export_job_id"]
        sim.backend.advance_clock(10)
        status = c.get(f"/organizations/{sim.org.id}/usage_export_job/{job}").json()
        assert status["state"] == "completed"
        for url in status["download_urls"]:
            resp = c.get(url)
            assert resp.status_code == 200
            header, part_rows = read_csv_part(resp.content)
            headers.append(header)
            rows += part_rows
    return sim, start, end, headers, rows


@pytest.fixture(scope="module")
def make_sim_module_export():
    from sim_helpers import SyncASGIClient, tiny_config

    from circleci_analytics.simulator import Simulator, create_app

    s = Simulator(tiny_config(export_rows_per_part=500, export_processing_seconds=1.0))
    with SyncASGIClient(create_app(s), headers={"Circle-Token": s.token}) as c:
        yield s, c


# -- usage export == job_runs --------------------------------------------------------------------
def test_usage_export_rows_equal_truth_job_runs(export):
    sim, start, end, headers, rows = export
    truth = sim.truth().job_runs().to_pylist()
    expected = [t for t in truth if start <= t["started_at"] <= end]
    assert len(expected) > 1000
    assert len(headers) > 1, "the export should span several parts"
    assert len(rows) == len(expected)
    assert Counter(r["JOB_ID"] for r in rows) == Counter(t["job_id"] for t in expected)
    assert len({r["JOB_ID"] for r in rows}) == len(rows), "a job run appears twice"
    by_id = {t["job_id"]: t for t in expected}
    for r in rows:
        t = by_id[r["JOB_ID"]]
        assert int(r["JOB_RUN_NUMBER"]) == t["job_number"]
        assert r["JOB_NAME"] == t["job_name"] and r["JOB_BUILD_STATUS"] == t["job_status"]
        assert r["WORKFLOW_ID"] == t["workflow_id"] and r["PIPELINE_ID"] == t["pipeline_id"]
        assert r["VCS_BRANCH"] == t["vcs_branch"] and r["RESOURCE_CLASS"] == t["resource_class"]
        assert int(r["JOB_RUN_SECONDS"]) == t["run_seconds"]
        assert Decimal(r["TOTAL_CREDITS"]) == t["total_credits"]


def test_usage_export_workflow_columns_are_the_workflow_runs_own(export):
    """A workflow's export rows carry its outcome, stop time, pipeline creation and the queue
    time of its first job; a re-run's first job is one it executed, not one kept from the run
    before (whose queue time precedes the re-run's creation)."""
    sim, start, end, _, rows = export
    truth = sim.truth().job_runs().to_pylist()
    by_id = {t["job_id"]: t for t in truth}
    partial = {t["workflow_id"] for t in truth if not start <= t["started_at"] <= end}
    queued: dict[str, list[str]] = defaultdict(list)
    first: dict[str, str] = {}
    for r in rows:
        t = by_id[r["JOB_ID"]]
        assert r["WORKFLOW_STOPPED_AT"] == _ts(t["workflow_stopped_at"])
        assert r["PIPELINE_CREATED_AT"] == _ts(t["pipeline_created_at"])
        assert (r["IS_WORKFLOW_SUCCESSFUL"] in ("true", "Y")) == (t["workflow_status"] == "success")
        queued[r["WORKFLOW_ID"]].append(r["JOB_RUN_QUEUED_AT"])
        first[r["WORKFLOW_ID"]] = r["WORKFLOW_FIRST_JOB_QUEUED_AT"]
    reruns = {t["workflow_id"] for t in truth if t["is_rerun"]} & set(first)
    assert reruns
    for wid, ts in queued.items():
        if wid not in partial:
            assert first[wid] == min(ts), wid


def test_usage_export_credit_sums_per_type_are_exact(export):
    sim, start, end, _, rows = export
    truth = [t for t in sim.truth().job_runs().to_pylist() if start <= t["started_at"] <= end]
    for column in CREDIT_COLUMNS:
        got = sum((Decimal(r[column]) for r in rows), Decimal(0))
        want = sum((t[column.lower()] for t in truth), Decimal(0))
        assert got == want, column
    total = sum((Decimal(r["TOTAL_CREDITS"]) for r in rows), Decimal(0))
    assert total == sum((Decimal(r[c]) for r in rows for c in CREDIT_COLUMNS[:-1]), Decimal(0))
    assert total > 0


def test_usage_export_credits_daily_match_truth_credits_daily(export):
    sim, start, end, _, rows = export
    got: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in rows:
        key = (r["JOB_RUN_DATE"], sim.history.catalog.projects[[p.id for p in sim.projects].index(r["PROJECT_ID"])].slug,
               r["EXECUTOR"], r["RESOURCE_CLASS"])  # fmt: skip
        got[key] += Decimal(r["TOTAL_CREDITS"])
    want: dict[tuple, Decimal] = defaultdict(Decimal)
    for (d, slug, executor, rc, ctype), v in sim.truth().credits_daily().items():
        if ctype == "total" and start.date() <= d <= end.date():
            want[(d.isoformat(), slug, executor, rc)] += v
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}


def test_usage_export_has_no_approval_jobs_and_a_header_per_part(export):
    _, _, _, headers, rows = export
    assert all(h == headers[0] for h in headers)
    assert len(headers[0]) == 48
    assert not [r for r in rows if r["JOB_NAME"] == "hold"]
    assert all(r["JOB_RUN_NUMBER"].isdigit() for r in rows)


# -- Insights == truth ------------------------------------------------------------------------
def test_insights_workflow_runs_equal_truth_workflow_runs(sim, client, truth):
    table = truth.workflow_runs().to_pylist()
    for project in sim.projects:
        for wf in project.workflows:
            url = f"/insights/{project.slug}/workflows/{quote_segment(wf)}"
            items = all_pages(client, url, {"all-branches": "true"})
            expected = [t for t in table if t["project_slug"] == project.slug and t["workflow_name"] == wf]
            assert expected and len(items) == len(expected), (project.slug, wf)
            got = {i["id"]: i for i in items}
            for t in expected:
                i = got[t["id"]]
                assert (i["branch"], i["status"], i["duration"], i["credits_used"], i["is_approval"]) == (
                    t["branch"], t["status"], t["duration_seconds"], t["credits_used"], t["is_approval"]
                )  # fmt: skip
                assert i["created_at"] == t["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
            created = [i["created_at"] for i in items]
            assert created == sorted(created, reverse=True), "runs must come newest first"


def test_insights_workflow_runs_default_to_the_default_branch(sim, client, truth):
    project = sim.projects[2]  # default branch "master"
    wf = project.workflows[0]
    items = all_pages(client, f"/insights/{project.slug}/workflows/{quote_segment(wf)}")
    assert items and {i["branch"] for i in items} == {project.default_branch}
    expected = [t for t in truth.workflow_runs().to_pylist()
                if t["project_slug"] == project.slug and t["workflow_name"] == wf and t["branch"] == "master"]  # fmt: skip
    assert len(items) == len(expected)


def test_insights_workflow_runs_date_window_is_start_inclusive_end_exclusive(sim, client, truth):
    """One-day windows aligned to midnight, over the whole history, partition the runs;
    they also catch re-runs created just after midnight for a pipeline of the day before."""
    project = sim.projects[0]
    wf = project.workflows[0]
    table = [
        t for t in truth.workflow_runs().to_pylist() if t["project_slug"] == project.slug and t["workflow_name"] == wf
    ]
    seen = 0
    for day in range(sim.history.days):
        start = sim.history.day_start(day)
        end = start + timedelta(days=1)
        items = all_pages(client, f"/insights/{project.slug}/workflows/{quote_segment(wf)}",
                          {"all-branches": "true", "start-date": _iso(start), "end-date": _iso(end)})  # fmt: skip
        expected = {t["id"] for t in table if start <= t["created_at"] < end}
        assert {i["id"] for i in items} == expected, start
        seen += len(expected)
    assert seen == len(table)


def test_reruns_crossing_midnight_are_in_the_window_of_their_creation_day(make_sim, make_client):
    """A re-run created after midnight, of a pipeline from the day before, is listed for the
    day it was created (Insights filters on the run's own created_at). Some seed has one."""
    for seed in range(1, 60):
        s = make_sim(seed=seed)
        crossing = [(p, w) for p in s.projects for d in range(s.history.days) for pl in s.history.pipelines(p, d)
                    for w in pl.workflows if w.created_at.date() != pl.created_at.date()]  # fmt: skip
        if crossing:
            break
    assert crossing, "no seed in 1..59 has a re-run crossing midnight"
    c = make_client(s)
    for project, w in crossing:
        start = datetime.combine(w.created_at.date(), datetime.min.time(), tzinfo=w.created_at.tzinfo)
        params = {"all-branches": "true", "start-date": _iso(start), "end-date": _iso(start + timedelta(days=1))}
        items = all_pages(c, f"/insights/{project.slug}/workflows/{quote_segment(w.name)}", params)
        assert w.id in {i["id"] for i in items}
        series = c.get(f"/insights/time-series/{project.slug}/workflows/{quote_segment(w.name)}/jobs",
                       params={"branch": w.pipeline.branch, "start-date": _iso(start),
                               "end-date": _iso(start + timedelta(days=1))}).json()["items"]  # fmt: skip
        executed = [j for j in w.executed_jobs if start <= j.started_at]
        assert sum(i["metrics"]["total_runs"] for i in series) >= len(executed) > 0


@pytest.mark.parametrize("window", ["last-7-days", "last-30-days", "last-90-days"])
def test_insights_mttr_and_recoveries_match_truth(sim, client, truth, window):
    days = int(window.split("-")[1])
    since = NOW - timedelta(days=days)
    checked = 0
    for project in sim.projects:
        items = all_pages(client, f"/insights/{project.slug}/workflows", {"reporting-window": window})
        for item in items:
            recs = [r for r in truth.recoveries()
                    if r.project_slug == project.slug and r.workflow_name == item["name"]
                    and r.branch == project.default_branch and r.recovered_at is not None
                    and since <= r.recovered_at < NOW]  # fmt: skip
            m = item["metrics"]
            assert m["total_recoveries"] == len(recs), (project.slug, item["name"], window)
            want = int(round(statistics.fmean(r.seconds for r in recs))) if recs else None
            assert m["mttr"] == want, (project.slug, item["name"], window)
            checked += bool(recs)
    assert checked >= 2, "no workflow with recoveries in the window: the check proved nothing"


def test_insights_workflow_totals_match_truth(sim, client, truth):
    table = truth.workflow_runs().to_pylist()
    since = NOW - timedelta(days=30)
    project = sim.projects[0]
    items = all_pages(
        client, f"/insights/{project.slug}/workflows", {"reporting-window": "last-30-days", "all-branches": "true"}
    )
    for item in items:
        runs = [t for t in table if t["project_slug"] == project.slug and t["workflow_name"] == item["name"]
                and since <= t["created_at"] < NOW]  # fmt: skip
        m = item["metrics"]
        assert m["total_runs"] == len(runs)
        assert m["successful_runs"] == sum(t["status"] == "success" for t in runs)
        assert m["failed_runs"] == sum(t["status"] in ("failed", "error") for t in runs)
        assert m["total_credits_used"] == sum(t["credits_used"] for t in runs)


def test_insights_flaky_tests_match_truth_flaky_set(sim, client, truth):
    flaky = truth.flaky_tests()
    recent = {k for k, v in flaky.items() if v["last_flake_at"] >= NOW - timedelta(days=14)}
    assert recent
    for project in sim.projects:
        items = client.get(f"/insights/{project.slug}/flaky-tests").json()["flaky_tests"]
        got = {(project.slug, i["job_name"], i["classname"], i["test_name"]): i for i in items}
        want = {k for k in recent if k[0] == project.slug}
        assert set(got) == want, project.slug
        assert set(got) <= set(flaky)
        for key, item in got.items():
            assert item["times_flaked"] == flaky[key]["times_flaked"], key


def test_tests_endpoint_equals_truth_test_runs(sim, make_sim, make_client):
    s = make_sim(tests_page_size=3)
    c = make_client(s)
    project = s.projects[0]
    table = s.truth(projects=[project]).test_runs().to_pylist()
    by_job: dict[int, list] = defaultdict(list)
    for t in table:
        by_job[t["job_number"]].append(t)
    numbers = sorted(by_job)[:: max(1, len(by_job) // 6)]
    assert len(numbers) >= 3
    for n in numbers:
        items = all_pages(c, f"/project/{project.slug}/{n}/tests")
        assert len(items) > 3, "expected several pages with tests_page_size=3"
        got = [(i["classname"], i["name"], i["file"], i["result"], i["run_time"], i["message"]) for i in items]
        want = [(t["classname"], t["name"], t["file"], t["result"], t["run_time"], t["message"]) for t in by_job[n]]
        assert got == want, n


def test_job_details_match_truth(sim, client, truth):
    rows = [t for t in truth.job_runs().to_pylist() if t["project_slug"] == sim.projects[1].slug][::97]
    for t in rows:
        body = client.get(f"/project/{sim.projects[1].slug}/job/{t['job_number']}").json()
        assert body["name"] == t["job_name"] and body["status"] == t["job_status"]
        assert body["duration"] == t["run_seconds"] * 1000, "job duration is in milliseconds"
        assert body["executor"]["resource_class"] == t["resource_class"]
        assert body["latest_workflow"]["id"] == t["workflow_id"]


# -- planted patterns -------------------------------------------------------------------------
def test_planted_cost_spike_is_an_anomaly_on_project_0(sim, truth):
    p0 = sim.projects[0]
    spikes = [d for d in sim.history.spike_days(p0) if d >= 14]  # an anomaly needs 14 days of history
    assert spikes, "the tiny preset must hold a planted spike with 14 days of history before it"
    spike_date = sim.history.day_start(spikes[0]).date()
    assert (p0.slug, spike_date) in truth.anomalies()
    daily = truth.credits_by_project_day()
    baseline = [daily.get((p0.slug, spike_date - timedelta(days=k)), Decimal(0)) for k in range(1, 15)]
    assert daily[(p0.slug, spike_date)] > 2 * max(baseline)


def test_planted_flaky_tests_exist_in_every_project(sim, truth):
    flaky_projects = {k[0] for k in truth.flaky_tests()}
    assert flaky_projects == {p.slug for p in sim.projects}


def test_planted_failure_streak_on_the_default_branch(sim, truth):
    default = {p.slug: p.default_branch for p in sim.projects}
    streaks = [r for r in truth.recoveries()
               if r.branch == default[r.project_slug] and r.failed_runs >= 2 and r.recovered_at is not None]  # fmt: skip
    assert len({r.project_slug for r in streaks}) >= 2
    assert max(r.failed_runs for r in streaks) >= 3, "an incident should break several runs in a row"
    assert all(r.seconds > 0 for r in streaks)
    incidents = sim.history.incidents(sim.projects[0])
    assert any(sim.history.start <= i.start < sim.history.end for i in incidents)


def test_planted_over_provisioned_lint_job(sim, truth):
    sizing = truth.right_sizing_p95(days=28)
    lint = {k: v for k, v in sizing.items() if k[1] == "lint"}
    assert lint and all(k[3] == "xlarge" for k in lint)
    assert all(cpu < 20 and ram < 20 and runs > 10 for cpu, ram, runs in lint.values())
    builds = [v for k, v in sizing.items() if k[1] == "build"]
    assert any(cpu > 60 for cpu, _, _ in builds), "only lint should look idle"


def test_planted_approval_jobs_have_no_job_number(sim, client):
    project = sim.projects[0]
    deploy = all_pages(client, f"/insights/{project.slug}/workflows/deploy")
    approvals = [i for i in deploy if i["is_approval"]]
    assert len(approvals) > 0.9 * len(deploy), "deploy holds on an approval unless its build failed"
    jobs = all_pages(client, f"/workflow/{approvals[0]['id']}/job")
    hold = [j for j in jobs if j["type"] == "approval"]
    assert [j["name"] for j in hold] == ["hold"]
    assert "job_number" not in hold[0]
    assert all("job_number" in j for j in jobs if j["type"] == "build")


def test_planted_github_app_slug_is_opaque_and_served(sim, client):
    p1 = sim.projects[1]
    assert re.fullmatch(r"circleci/[1-9A-HJ-NP-Za-km-z]{22}/[1-9A-HJ-NP-Za-km-z]{22}", p1.slug)
    body = client.get(f"/project/{p1.slug}").json()
    assert body["slug"] == p1.slug and body["vcs_info"]["provider"] == "CircleCI"
    assert client.get(f"/insights/{p1.slug}/workflows").json()["items"]


def test_planted_workflow_name_needs_percent_encoding(sim, client):
    name = sim.projects[0].workflows[0]
    assert "/" in name and " " in name and "&" in name
    seg = quote_segment(name)
    assert seg == "build%20%26%20test%2Fe2e"
    items = client.get(f"/insights/{sim.projects[0].slug}/workflows/{seg}").json()["items"]
    assert items


def test_truth_restricted_window_is_a_subset(sim, truth):
    part = GroundTruth(sim.history, projects=sim.projects[:1], first_day=10, last_day=12)
    ids = set(part.job_runs().column("job_id").to_pylist())
    assert ids and ids <= set(truth.job_runs().column("job_id").to_pylist())
