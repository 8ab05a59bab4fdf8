"""The generic extractor and the handlers against canned responses (httpx.MockTransport):
parsing through the field map, request parameters, record selection, schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from connector_helpers import run

from circleci_analytics.connectors import (
    CATALOGUE,
    DataError,
    JobRef,
    ProbeState,
    extract_job_tests,
    extract_projects,
    extract_stream,
)
from circleci_analytics.connectors.extract import run_windows
from circleci_analytics.connectors.projects import insights_project_names

SLUG = "gh/acme/api"
DM = {"min": 1, "mean": 2, "median": 2, "p95": 4, "max": 5, "standard_deviation": 1.5}
AT = datetime(2026, 6, 1, tzinfo=UTC)


def _go(make_client, handler, fn, *args, **kwargs):
    async def go():
        async with make_client(handler) as client:
            return await fn(client, *args, **kwargs)

    return run(go())


@pytest.mark.parametrize("style", ["snake", "kebab"])
def test_flaky_tests_both_key_styles(make_client, style):
    item = {
        "test_name": "test_login",
        "classname": "auth.LoginTest",
        "file": "",
        "source": None,
        "job_name": "unit",
        "job_number": 42,
        "workflow_name": "build",
        "workflow_id": "wf-1",
        "workflow_created_at": "2026-05-01T10:00:00Z",
        "pipeline_number": 7,
        "times_flaked": 3,
    }
    body = {"flaky_tests": [item], "total_flaky_tests": 1}
    if style == "kebab":
        body = {
            "flaky-tests": [{k.replace("_", "-"): v for k, v in item.items()} | {"time-wasted": 90}],
            "total-flaky-tests": 1.0,
        }
    stream = CATALOGUE["flaky_tests"]
    ext = _go(make_client, lambda r: httpx.Response(200, json=body), extract_stream, stream, {"project_slug": SLUG})
    row = ext.table.to_pylist()[0]
    assert row["project_slug"] == SLUG and row["test_name"] == "test_login"
    assert row["job_number"] == 42 and row["times_flaked"] == 3
    assert row["file"] is None and row["source"] is None  # "" and null both land as null
    assert row["workflow_created_at"] == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert row["time_wasted_seconds"] == (90 if style == "kebab" else None)
    assert ext.table.schema == stream.schema


def test_workflow_metrics_every_scope_with_its_params_and_nullables(make_client):
    seen: list[httpx.QueryParams] = []

    def handler(request):
        seen.append(request.url.params)
        item = {
            "name": "build",
            "project_id": "p1",
            "window_start": "2026-03-01T00:00:00.123Z",
            "window_end": "2026-06-01T00:00:00Z",
            "metrics": {
                "total_runs": 10,
                "successful_runs": 8,
                "failed_runs": 2,
                "mttr": None,
                "total_credits_used": None,
                "total_recoveries": None,
                "success_rate": 0.8,
                "throughput": 0.1,
                "duration_metrics": DM | {"max": None},
            },
        }
        return httpx.Response(200, json={"items": [item], "next_page_token": None})

    ext = _go(make_client, handler, extract_stream, CATALOGUE["workflow_metrics"], {"project_slug": SLUG})
    assert [p.get("all-branches") for p in seen] == ["true", None]  # all branches, then the default branch
    assert all(p["reporting-window"] == "last-90-days" and "branch" not in p for p in seen)
    rows = ext.table.to_pylist()
    assert [r["scope"] for r in rows] == ["all-branches", "default-branch"]
    row = rows[0]
    assert row["reporting_window"] == "last-90-days" and row["workflow_name"] == "build"
    assert row["mttr_seconds"] is None and row["duration_max_seconds"] is None
    assert row["duration_p95_seconds"] == 4 and row["success_rate"] == 0.8 and row["duration_stddev_seconds"] == 1.5
    assert row["window_start"] == datetime(2026, 3, 1, 0, 0, 0, 123000, tzinfo=UTC)


def test_workflow_runs_incremental_windows(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        start = request.url.params["start-date"]
        item = {"id": f"run-{start}", "branch": "main", "duration": 100, "created_at": start, "stopped_at": None,
                "credits_used": 5, "status": "success", "is_approval": False}  # fmt: skip
        return httpx.Response(200, json={"items": [item], "next_page_token": None})

    watermark = now - timedelta(days=200)
    since = watermark - timedelta(days=2)
    context = {"project_slug": SLUG, "workflow_name": "deploy/prod"}
    ext = _go(make_client, handler, extract_stream, CATALOGUE["workflow_runs"], context, since=since, now=now,
              watermark=watermark)  # fmt: skip
    windows = sorted((datetime.fromisoformat(r.url.params["start-date"]), datetime.fromisoformat(r.url.params["end-date"]))
                     for r in seen)  # fmt: skip
    assert windows[0][0] == since and windows[-1][1] == now
    assert all(e - s <= timedelta(days=90) for s, e in windows)
    assert all(windows[i + 1][0] == windows[i][1] for i in range(len(windows) - 1))
    assert len(seen) == 3  # 202 days -> 90 + 90 + 22
    assert b"/workflows/deploy%2Fprod" in seen[0].url.raw_path
    assert all(r.url.params["all-branches"] == "true" for r in seen)
    assert ext.watermark == windows[-1][0]  # the newest created_at seen
    assert ext.num_rows == 3 and set(ext.table.column("workflow_name").to_pylist()) == {"deploy/prod"}


def test_an_incremental_read_that_finds_nothing_keeps_the_old_watermark(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    empty = lambda r: httpx.Response(200, json={"items": [], "next_page_token": None})  # noqa: E731
    ext = _go(make_client, empty, extract_stream, CATALOGUE["workflow_runs"], {"project_slug": SLUG, "workflow_name": "b"},
              since=now - timedelta(days=1), now=now, watermark=now - timedelta(hours=5))  # fmt: skip
    assert ext.num_rows == 0 and ext.watermark == now - timedelta(hours=5)


def test_run_windows_empty_when_start_not_before_end():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert run_windows(t, t, timedelta(days=90)) == []


def test_discovery_reads_the_org_summary_once(make_client):
    seen = []
    body = {"org_data": {}, "org_project_data": [{"project_name": "web"}, {"project_name": "api"}, {"project_name": ""}],
            "all_projects": ["api", "web", "old"]}  # fmt: skip

    def handler(request):
        seen.append(request.url)
        return httpx.Response(200, json=body)

    assert _go(make_client, handler, insights_project_names, "gh/acme") == ["api", "old", "web"]
    assert len(seen) == 1 and seen[0].params["reporting-window"] == "last-90-days"
    assert seen[0].raw_path.startswith(b"/api/v2/insights/gh/acme/summary")


def test_test_metrics_rows_are_tagged_with_their_list(make_client):
    body = {
        "average_test_count": 3,
        "most_failed_tests": [
            {
                "failed_runs": 2,
                "job_name": "unit",
                "p95_duration": None,
                "test_name": "t1",
                "total_runs": 10,
                "flaky": True,
            }
        ],  # fmt: skip
        "most_failed_tests_extra": 0,
        "slowest_tests": [
            {
                "failed_runs": 0,
                "job_name": "unit",
                "p95_duration": 9.5,
                "test_name": "t2",
                "total_runs": 10,
                "flaky": False,
                "classname": "",
                "file": "b.py",
            }
        ],  # fmt: skip
        "slowest_tests_extra": 0,
        "total_test_runs": 10,
        "test_runs": [],
    }
    seen = []

    def handler(request):
        seen.append(request.url.params)
        return httpx.Response(200, json=body)

    context = {"project_slug": SLUG, "workflow_name": "build"}
    out = _go(make_client, handler, extract_stream, CATALOGUE["test_metrics"], context)
    rows = out.table.to_pylist()
    assert [(r["category"], r["test_name"]) for r in rows] == [("most_failed", "t1"), ("slowest", "t2")]
    assert rows[0]["classname"] is None and rows[0]["flaky"] is True and rows[0]["scope"] == "default-branch"
    assert rows[1]["p95_duration_seconds"] == 9.5 and rows[1]["classname"] is None and rows[1]["file"] == "b.py"
    assert len(seen) == 1 and "all-branches" not in seen[0] and "branch" not in seen[0]


def test_a_value_of_the_wrong_type_names_the_stream_and_column(make_client):
    item = {"id": "r1", "created_at": "yesterday", "status": "success"}
    handler = lambda r: httpx.Response(200, json={"items": [item], "next_page_token": None})  # noqa: E731
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(DataError, match="'workflow_runs', column 'created_at'"):
        _go(make_client, handler, extract_stream, CATALOGUE["workflow_runs"], {"project_slug": SLUG, "workflow_name": "b"},
            since=now - timedelta(days=1), now=now)  # fmt: skip


def test_projects_resolution(make_client):
    def handler(request):
        assert request.url.raw_path == b"/api/v2/project/circleci/ORG1/PRJ1"
        return httpx.Response(
            200,
            json={
                "id": "uuid-1",
                "name": "api",
                "slug": "circleci/ORG1/PRJ1",
                "organization_id": "org-uuid",
                "organization_name": "acme",
                "organization_slug": "circleci/ORG1",
                "vcs_info": {"vcs_url": "https://github.com/acme/api", "provider": "GitHub", "default_branch": "main"},
            },
        )

    ext = _go(make_client, handler, extract_projects, ["circleci/ORG1/PRJ1"])
    row = ext.table.to_pylist()[0]
    assert row["project_id"] == "uuid-1" and row["default_branch"] == "main" and row["org_id"] == "org-uuid"
    assert row["vcs_provider"] == "GitHub" and ext.context == {"org_slug": "circleci/ORG1"} and not ext.extra


def test_a_null_in_a_required_column_is_refused():
    stream = CATALOGUE["workflow_runs"]
    record = {"id": None, "created_at": "2026-06-01T00:00:00Z"}
    with pytest.raises(DataError, match="required column 'workflow_id'"):
        stream.table([({"project_slug": "x", "workflow_name": "w", "scope": "s"}, [record], None)], AT)


# -- job tests selection ---------------------------------------------------------------------
def _tests_handler(calls):
    def handler(request):
        number = int(request.url.path.rstrip("/").split("/")[-2])
        calls.append(number)
        if number == 404:
            return httpx.Response(404, json={"message": "Not Found"})
        if number % 2:  # odd jobs have no tests
            return httpx.Response(200, json={"items": [], "next_page_token": None})
        page = request.url.params.get("page-token")
        if page is None:
            items = [
                {
                    "message": None,
                    "source": "junit",
                    "run_time": 0.5,
                    "file": "a.py",
                    "result": "success",
                    "name": "t1",
                    "classname": "A",
                }
            ]
            return httpx.Response(200, json={"items": items, "next_page_token": "p2"})
        items = [
            {
                "message": "boom",
                "source": "junit",
                "run_time": 1,
                "file": "a.py",
                "result": "failure",
                "name": "t2",
                "classname": "A",
            }
        ]
        return httpx.Response(200, json={"items": items, "next_page_token": None})

    return handler


def test_job_tests_selection_and_state(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    jobs = [
        # a re-run workflow (listed first, newest first) shares job 2 with the original
        JobRef(SLUG, 2, "unit", workflow_id="w2-rerun", pipeline_id="p1", workflow_created_at=now - timedelta(hours=1)),
        JobRef(SLUG, 2, "unit", workflow_id="w1", pipeline_id="p1", workflow_created_at=now - timedelta(hours=2)),
        JobRef(SLUG, None, "hold", job_type="approval"),
        JobRef(SLUG, None, "build"),
        JobRef(SLUG, 3, "lint"),  # no tests -> learned
        JobRef(SLUG, 4, "unit"),  # already seen
        JobRef(SLUG, 6, "deploy-prod"),  # excluded
        JobRef(SLUG, 8, "unit", job_status="running"),
        JobRef(SLUG, 404, "unit"),
        JobRef(SLUG, 5, "docs"),  # known without tests, probed recently
    ]
    state = {
        "seen": [[SLUG, 4]],
        "no_test_jobs": [{"project_slug": SLUG, "job_name": "docs", "last_probed_at": "2026-05-30T00:00:00+00:00"}],
    }
    calls: list[int] = []
    result = _go(
        make_client, _tests_handler(calls), extract_job_tests, jobs, state=state, exclude=["deploy-*"], now=now
    )
    assert sorted(set(calls)) == [2, 3, 404]
    assert result.skipped == {
        "duplicate_job_number": 1,
        "approval": 1,
        "no_job_number": 1,
        "seen": 1,
        "excluded": 1,
        "not_finished": 1,
        "known_without_tests": 1,
    }
    rows = result.extract.table.to_pylist()
    assert [(r["job_number"], r["name"], r["workflow_id"]) for r in rows] == [(2, "t1", "w1"), (2, "t2", "w1")]
    assert rows[1]["run_time_seconds"] == 1.0 and rows[1]["message"] == "boom" and rows[1]["pipeline_id"] == "p1"
    assert result.extract.table.schema == CATALOGUE["job_tests"].schema
    assert result.failed and result.failed[0][1] == 404
    new = result.state
    assert (SLUG, 2) in new.seen and (SLUG, 3) in new.seen and (SLUG, 404) not in new.seen
    assert new.no_test_jobs[(SLUG, "lint")] == now
    assert state["seen"] == [[SLUG, 4]]  # input not mutated
    # round trip through plain data
    assert ProbeState.from_dict(new.to_dict()) == new


def test_job_tests_reprobe_after_interval(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    state = ProbeState(no_test_jobs={(SLUG, "docs"): now - timedelta(days=8), (SLUG, "lint"): now - timedelta(days=1)})
    calls: list[int] = []
    jobs = [JobRef(SLUG, 10, "docs"), JobRef(SLUG, 12, "lint")]
    result = _go(make_client, _tests_handler(calls), extract_job_tests, jobs, state=state, now=now)
    assert calls == [10, 10]  # docs re-probed (2 pages), lint still skipped
    assert (SLUG, "docs") not in result.state.no_test_jobs  # job 10 had tests
    assert result.skipped == {"known_without_tests": 1}


def test_job_tests_include_patterns(make_client):
    calls: list[int] = []
    jobs = [JobRef(SLUG, 2, "test-unit"), JobRef(SLUG, 12, "build")]
    result = _go(make_client, _tests_handler(calls), extract_job_tests, jobs, include=["test-*"])
    assert set(calls) == {2} and result.skipped == {"not_included": 1}
